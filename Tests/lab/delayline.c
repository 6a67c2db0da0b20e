/*
 * The tern lab's delay line in C: what delayline.py does, fast enough for
 * 1 Gbit/s. lab.sh compiles it into the run directory with the system's cc
 * when a link first needs a delay box, and falls back to delayline.py where
 * there is no compiler (or with LAB_DELAYLINE=python).
 *
 * Same command line, output and counters as delayline.py (its docstring
 * says what each option and counter means): raw Ethernet frames move
 * between --near and --far over AF_PACKET sockets, each held for its
 * direction's delay (plus uniform jitter, never reordering), dropped with
 * its loss probability, and optionally passed through a bottleneck of its
 * own (--rate-fwd/--rate-rev Mbit/s, a drop-tail queue of --queue-ms) that
 * marks ECT frames CE when their sojourn in that queue exceeds --ecn-ms.
 *
 * Speed: frames are read with recvmmsg and sent with sendmmsg, up to BATCH
 * a call, straight into and out of a ring per direction (no copy unless a
 * lost frame leaves a hole in a batch); the wait for the next due frame is
 * ppoll with a nanosecond timeout and 1 us of timer slack. It runs under
 * SCHED_FIFO (or at nice -20 where that is refused), as a link is hardware:
 * on a loaded machine a line at normal priority waits its turn behind
 * compilers, its socket buffer fills and the kernel drops frames (rxdrop)
 * that a real link would have carried. It sleeps whenever no frame is due,
 * so it takes only the CPU the traffic needs.
 *
 * Prints "ready ..." once both sockets are bound; on SIGUSR1 the counters;
 * on SIGTERM or SIGINT "exit" and the counters, and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define BATCH 64          /* frames per recvmmsg / sendmmsg call */
#define READ_ROUNDS 16    /* recvmmsg calls per socket per wakeup */
#define RING_START 4096   /* slots; doubles up to --max-queue */

static volatile sig_atomic_t stop_requested, dump_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }
static void on_dump(int sig) { (void)sig; dump_requested = 1; }

static void die(const char *what) {
    fprintf(stderr, "delayline: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* xoshiro256** for loss and jitter: fast and seedable. */
static uint64_t rng_state[4];
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(void) {
    uint64_t *s = rng_state, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}
static double rng_unit(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static void rng_seed(uint64_t seed) {
    for (int i = 0; i < 4; i++) {  /* splitmix64 */
        uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        rng_state[i] = z ^ (z >> 31);
    }
}

struct direction {
    const char *name;
    int src, dst;
    int64_t delay, jitter;            /* ns */
    double loss;                      /* probability */
    size_t max_queue;
    double ns_per_byte;               /* 0: no bottleneck */
    int64_t queue_limit, ecn;         /* ns; ecn 0: never mark */
    int64_t link_free, last_due;
    /* ring: slots [head, head + count) hold frames in due order */
    size_t cap, head, count, slot;
    unsigned char *data;
    uint32_t *len;
    int64_t *due;
    uint64_t rx, tx, lost, overflow, txdrop, rxdrop, ect, marked;
};

/* Is the frame's IP ECN field ECT(0) or ECT(1)? Untagged IPv4 or IPv6 only. */
static int is_ect(const unsigned char *f, size_t n) {
    if (n < 16) return 0;
    unsigned type = (unsigned)f[12] << 8 | f[13];
    if (type == ETHERTYPE_IP && n >= 34 && f[14] >> 4 == 4) return (f[15] & 3) == 1 || (f[15] & 3) == 2;
    if (type == ETHERTYPE_IPV6 && n >= 54 && f[14] >> 4 == 6) {
        unsigned e = (f[15] >> 4) & 3;
        return e == 1 || e == 2;
    }
    return 0;
}

/* Sets an ECT frame's ECN field to CE; IPv4's header checksum by RFC 1624. */
static void mark_ce(unsigned char *f) {
    unsigned type = (unsigned)f[12] << 8 | f[13];
    if (type == ETHERTYPE_IP) {
        uint32_t old = (uint32_t)f[14] << 8 | f[15];
        f[15] |= 3;
        uint32_t new = (uint32_t)f[14] << 8 | f[15];
        uint32_t hc = (uint32_t)f[24] << 8 | f[25];
        uint32_t x = (~hc & 0xFFFF) + (~old & 0xFFFF) + new;
        x = (x & 0xFFFF) + (x >> 16);
        x = (x & 0xFFFF) + (x >> 16);
        hc = ~x & 0xFFFF;
        f[24] = (unsigned char)(hc >> 8);
        f[25] = (unsigned char)hc;
    } else {
        f[15] |= 0x30;
    }
}

static unsigned char *slot_at(struct direction *d, size_t i) {
    return d->data + ((d->head + i) % d->cap) * d->slot;
}

/* Doubles the ring (up to max_queue slots), keeping the frames in order. */
static int grow(struct direction *d) {
    if (d->cap >= d->max_queue) return 0;
    size_t cap = d->cap * 2;
    if (cap > d->max_queue) cap = d->max_queue;
    unsigned char *data = malloc(cap * d->slot);
    uint32_t *len = malloc(cap * sizeof *len);
    int64_t *due = malloc(cap * sizeof *due);
    if (!data || !len || !due) { free(data); free(len); free(due); return 0; }
    for (size_t i = 0; i < d->count; i++) {
        size_t j = (d->head + i) % d->cap;
        memcpy(data + i * d->slot, d->data + j * d->slot, d->len[j]);
        len[i] = d->len[j];
        due[i] = d->due[j];
    }
    free(d->data); free(d->len); free(d->due);
    d->data = data; d->len = len; d->due = due; d->cap = cap; d->head = 0;
    return 1;
}

static unsigned char scratch[BATCH][65536 + 64];

/* Reads what src holds (up to READ_ROUNDS batches) into the ring. */
static void read_frames(struct direction *d, int64_t now) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    for (int round = 0; round < READ_ROUNDS; round++) {
        size_t room = d->cap - d->count;
        if (room < BATCH) { grow(d); room = d->cap - d->count; }
        /* A full ring still drains the socket (into scratch): overflow. */
        int full = room == 0;
        size_t n = full ? BATCH : (room < BATCH ? room : BATCH);
        for (size_t i = 0; i < n; i++) {
            iov[i].iov_base = full ? scratch[i] : slot_at(d, d->count + i);
            iov[i].iov_len = d->slot;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(d->src, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
        if (got <= 0) {
            if (got < 0 && errno != EAGAIN && errno != EINTR && errno != ENETDOWN) die("recvmmsg");
            return;
        }
        d->rx += (uint64_t)got;
        if (full) { d->overflow += (uint64_t)got; continue; }
        size_t kept = 0;
        for (int i = 0; i < got; i++) {
            size_t flen = msgs[i].msg_len;
            if (d->loss > 0 && rng_unit() < d->loss) { d->lost++; continue; }
            unsigned char *f = slot_at(d, d->count + (size_t)i);
            int64_t due = now;
            if (d->ns_per_byte > 0) {
                int64_t start = d->link_free > now ? d->link_free : now;
                int64_t sojourn = start - now;
                if (sojourn > d->queue_limit) { d->overflow++; continue; }
                if (is_ect(f, flen)) {
                    d->ect++;
                    if (d->ecn > 0 && sojourn > d->ecn) { mark_ce(f); d->marked++; }
                }
                d->link_free = start + (int64_t)(flen * d->ns_per_byte);
                due = d->link_free;
            }
            due += d->delay;
            if (d->jitter > 0) {
                due += (int64_t)(rng_unit() * (double)d->jitter);
                if (due < d->last_due) due = d->last_due;
            }
            d->last_due = due;
            size_t at = (d->head + d->count + kept) % d->cap;
            if (kept != (size_t)i) memcpy(d->data + at * d->slot, f, flen);
            d->len[at] = (uint32_t)flen;
            d->due[at] = due;
            kept++;
        }
        d->count += kept;
        if ((size_t)got < n) return;
    }
}

/* Sends every frame that is due; returns the next due time, or -1. */
static int64_t flush_frames(struct direction *d, int64_t now) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    while (d->count > 0) {
        size_t n = 0;
        while (n < BATCH && n < d->count) {
            size_t j = (d->head + n) % d->cap;
            if (d->due[j] > now) break;
            iov[n].iov_base = d->data + j * d->slot;
            iov[n].iov_len = d->len[j];
            memset(&msgs[n].msg_hdr, 0, sizeof msgs[n].msg_hdr);
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            n++;
        }
        if (n == 0) return d->due[d->head];
        size_t done = 0;
        while (done < n) {
            int sent = sendmmsg(d->dst, msgs + done, (unsigned)(n - done), MSG_DONTWAIT);
            if (sent > 0) { d->tx += (uint64_t)sent; done += (size_t)sent; continue; }
            if (sent < 0 && errno == EINTR) continue;
            /* ENOBUFS/EAGAIN: the far side's qdisc (tbf) or socket buffer is
             * full. Drop, as a router with a full buffer would. */
            d->txdrop++;
            done++;
        }
        d->head = (d->head + n) % d->cap;
        d->count -= n;
    }
    return -1;
}

/* Frames the kernel dropped because the socket's buffer was full. */
static void poll_kernel_drops(struct direction *d) {
    struct tpacket_stats st;
    socklen_t sl = sizeof st;
    if (getsockopt(d->src, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) d->rxdrop += st.tp_drops;
}

static void print_stats(FILE *out, const char *prefix, struct direction *ds) {
    fputs(prefix, out);
    for (int i = 0; i < 2; i++) {
        struct direction *d = &ds[i];
        poll_kernel_drops(d);
        fprintf(out, "%s%s: rx=%llu tx=%llu lost=%llu overflow=%llu txdrop=%llu rxdrop=%llu ect=%llu marked=%llu queued=%zu",
                i ? " | " : "", d->name, (unsigned long long)d->rx, (unsigned long long)d->tx,
                (unsigned long long)d->lost, (unsigned long long)d->overflow, (unsigned long long)d->txdrop,
                (unsigned long long)d->rxdrop, (unsigned long long)d->ect, (unsigned long long)d->marked, d->count);
    }
    fputc('\n', out);
    fflush(out);
}

static int open_iface(const char *name) {
    int s = socket(AF_PACKET, SOCK_RAW, 0);
    if (s < 0) die("socket");
    int one = 1, rcv = 16 << 20, snd = 4 << 20;
    setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0) die("SO_RCVBUFFORCE");
    if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd) < 0) die("SO_SNDBUFFORCE");
    struct sockaddr_ll a = {0};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = (int)if_nametoindex(name);
    if (a.sll_ifindex == 0) die(name);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    return s;
}

static int iface_mtu(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "/sys/class/net/%s/mtu", name);
    FILE *f = fopen(path, "r");
    int mtu = 1500;
    if (f) { if (fscanf(f, "%d", &mtu) != 1) mtu = 1500; fclose(f); }
    return mtu;
}

static double number(const char *opt, const char *v) {
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end != 0 || x < 0) { fprintf(stderr, "delayline: %s: not a number: '%s'\n", opt, v); exit(2); }
    return x;
}

static void init_direction(struct direction *d, const char *name, int src, int dst, double delay_ms,
                           double jitter_ms, double loss_pct, size_t max_queue, size_t slot,
                           double rate_mbit, double queue_ms, double ecn_ms) {
    memset(d, 0, sizeof *d);
    d->name = name; d->src = src; d->dst = dst;
    d->delay = (int64_t)(delay_ms * 1e6);
    d->jitter = (int64_t)(jitter_ms * 1e6);
    d->loss = loss_pct / 100.0;
    d->max_queue = max_queue;
    d->ns_per_byte = rate_mbit > 0 ? 8e3 / rate_mbit : 0;
    d->queue_limit = (int64_t)(queue_ms * 1e6);
    d->ecn = (int64_t)(ecn_ms * 1e6);
    d->slot = slot;
    d->cap = max_queue < RING_START ? max_queue : RING_START;
    d->data = malloc(d->cap * slot);
    d->len = malloc(d->cap * sizeof *d->len);
    d->due = malloc(d->cap * sizeof *d->due);
    if (!d->data || !d->len || !d->due) die("malloc");
}

int main(int argc, char **argv) {
    const char *near = NULL, *far = NULL;
    double delay_fwd = 0, delay_rev = 0, loss_fwd = 0, loss_rev = 0, jitter = 0;
    double rate_fwd = 0, rate_rev = 0, queue_ms = 100, ecn_ms = 0, max_queue = 100000;
    uint64_t seed = (uint64_t)now_ns() ^ (uint64_t)getpid() << 32;
    static struct option opts[] = {
        {"near", 1, 0, 'n'}, {"far", 1, 0, 'f'}, {"delay-fwd", 1, 0, 'd'}, {"delay-rev", 1, 0, 'D'},
        {"loss-fwd", 1, 0, 'l'}, {"loss-rev", 1, 0, 'L'}, {"jitter", 1, 0, 'j'}, {"max-queue", 1, 0, 'm'},
        {"seed", 1, 0, 's'}, {"rate-fwd", 1, 0, 'r'}, {"rate-rev", 1, 0, 'R'}, {"queue-ms", 1, 0, 'q'},
        {"ecn-ms", 1, 0, 'e'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *o = opts[0].name;
        for (struct option *p = opts; p->name; p++) if (p->val == c) o = p->name;
        switch (c) {
        case 'n': near = optarg; break;
        case 'f': far = optarg; break;
        case 'd': delay_fwd = number(o, optarg); break;
        case 'D': delay_rev = number(o, optarg); break;
        case 'l': loss_fwd = number(o, optarg); break;
        case 'L': loss_rev = number(o, optarg); break;
        case 'j': jitter = number(o, optarg); break;
        case 'm': max_queue = number(o, optarg); break;
        case 's': seed = (uint64_t)number(o, optarg); break;
        case 'r': rate_fwd = number(o, optarg); break;
        case 'R': rate_rev = number(o, optarg); break;
        case 'q': queue_ms = number(o, optarg); break;
        case 'e': ecn_ms = number(o, optarg); break;
        default: exit(2);
        }
    }
    if (!near || !far || max_queue < 1) {
        fprintf(stderr, "usage: delayline --near IFACE --far IFACE [--delay-fwd MS] [--delay-rev MS] "
                        "[--loss-fwd PCT] [--loss-rev PCT] [--jitter MS] [--max-queue FRAMES] [--seed N] "
                        "[--rate-fwd MBIT] [--rate-rev MBIT] [--queue-ms MS] [--ecn-ms MS]\n");
        exit(2);
    }
    rng_seed(seed);
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    const char *sched = "fifo";
    struct sched_param sp = {.sched_priority = 10};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
        sched = setpriority(PRIO_PROCESS, 0, -20) == 0 ? "nice-20" : "normal";
    }

    int sn = open_iface(near), sf = open_iface(far);
    int mtu = iface_mtu(near) > iface_mtu(far) ? iface_mtu(near) : iface_mtu(far);
    size_t slot = ((size_t)mtu + 64 + 63) & ~(size_t)63;
    struct direction ds[2];
    init_direction(&ds[0], "fwd", sn, sf, delay_fwd, jitter, loss_fwd, (size_t)max_queue, slot, rate_fwd, queue_ms, ecn_ms);
    init_direction(&ds[1], "rev", sf, sn, delay_rev, jitter, loss_rev, (size_t)max_queue, slot, rate_rev, queue_ms, ecn_ms);

    /* Signals are blocked except inside ppoll: no wakeup is lost. */
    sigset_t block, during;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM); sigaddset(&block, SIGINT); sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &during);
    sigdelset(&during, SIGTERM); sigdelset(&during, SIGINT); sigdelset(&during, SIGUSR1);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_dump;
    sigaction(SIGUSR1, &sa, NULL);

    printf("ready pid=%d near=%s far=%s delay=%g/%gms jitter=%gms loss=%g/%g%% rate=%g/%gmbit queue=%gms ecn=%gms (C, %s)\n",
           (int)getpid(), near, far, delay_fwd, delay_rev, jitter, loss_fwd, loss_rev, rate_fwd, rate_rev, queue_ms, ecn_ms,
           sched);
    fflush(stdout);

    struct pollfd pfd[2] = {{sn, POLLIN, 0}, {sf, POLLIN, 0}};
    while (!stop_requested) {
        if (dump_requested) { dump_requested = 0; print_stats(stdout, "", ds); }
        int64_t now = now_ns();
        int64_t n0 = flush_frames(&ds[0], now), n1 = flush_frames(&ds[1], now);
        int64_t next = n0 < 0 ? n1 : (n1 < 0 ? n0 : (n0 < n1 ? n0 : n1));
        struct timespec ts, *tp = NULL;
        if (next >= 0) {
            int64_t wait = next - now_ns();
            if (wait < 0) wait = 0;
            ts.tv_sec = wait / 1000000000;
            ts.tv_nsec = wait % 1000000000;
            tp = &ts;
        }
        int r = ppoll(pfd, 2, tp, &during);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("ppoll");
        }
        if (r > 0) {
            now = now_ns();
            if (pfd[0].revents) read_frames(&ds[0], now);
            if (pfd[1].revents) read_frames(&ds[1], now);
        }
    }
    print_stats(stdout, "exit ", ds);
    return 0;
}
