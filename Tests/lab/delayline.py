#!/usr/bin/env python3
"""A delay line for the tern lab: the kernel here has no sch_netem.

Runs inside a "delay box" namespace that lab.sh splices into the middle of a
veth link. It moves raw Ethernet frames between two interfaces with AF_PACKET
sockets: a frame read on --near leaves on --far ("fwd") and the other way
round ("rev"), each held for its direction's delay and dropped with its
direction's loss probability. The box has no IP addresses, so the kernel never
forwards or answers anything there; this program is the only path.

Delays are constant plus optional uniform jitter; frames never overtake each
other (a jittered frame waits for the one before it), so it adds delay and
loss but no reordering. Frames that do not fit (queue above --max-queue, or
the far side's qdisc refusing them, e.g. under a tbf rate) are dropped, which
is what a full router buffer does.

A bottleneck of its own (--rate-fwd/--rate-rev, Mbit/s): a frame that
survives the loss waits in a drop-tail queue of at most --queue-ms (the time
the frames before it take to leave at the rate), then its own serialization
time, then the delay. Its sojourn time in that queue is known when it
arrives, so with --ecn-ms T a frame whose IP header says ECT(0) or ECT(1) is
marked CE (ECN bits 11; the IPv4 header checksum updated) when it will wait
longer than T ms: a step AQM at the bottleneck, as DCTCP and L4S expect.
Counters: rx (read), tx (sent), lost (random loss), overflow (the queue was
full: --max-queue frames or --queue-ms), txdrop (the far side refused it),
rxdrop (the kernel dropped it before this program read it: socket buffer
full, i.e. the line itself was too slow), ect (ECN-capable frames that
reached the queue), marked (set to CE), queued (held now).

delayline.c is the same program in C, fast enough for 1 Gbit/s; lab.sh
runs it where it compiles and this one otherwise (or with
LAB_DELAYLINE=python).

Throughput: per frame one recv and one send on nonblocking sockets, reads
drained in batches per wakeup, and select() with a microsecond timeout to the
next frame due. See docs/lab.md for the numbers it reaches.

Stdlib only. Prints "ready" once both sockets are bound; on SIGTERM or SIGINT
prints its counters and exits; on SIGUSR1 prints the counters.
"""
import argparse
import collections
import errno
import os
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23   # Linux >= 4.20: do not see our own transmissions
PACKET_STATISTICS = 6         # struct tpacket_stats: packets, drops (reset on read)
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
BATCH = 512                   # frames read per socket per wakeup


def open_iface(name):
    # Protocol 0 at creation so the socket sees nothing until it is bound to
    # its interface; then ETH_P_ALL on that interface only.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    return s


def iface_mtu(name):
    with open(f"/sys/class/net/{name}/mtu") as f:
        return int(f.read())


ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


def mark_ce(frame):
    """Returns (frame, ect, marked): FRAME with its IP ECN field set to CE if it
    was ECT(0) or ECT(1). Only untagged Ethernet frames carrying IPv4 or IPv6."""
    if len(frame) < 34:
        return frame, False, False
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETH_P_IP:
        ihl = (frame[14] & 0x0F) * 4
        if frame[14] >> 4 != 4 or ihl < 20 or len(frame) < 14 + ihl:
            return frame, False, False
        tos = frame[15]
        if tos & 3 not in (1, 2):
            return frame, False, False
        b = bytearray(frame)
        b[15] = tos | 3
        # RFC 1624: HC' = ~(~HC + ~m + m') over the 16-bit word that changed.
        old = (b[14] << 8) | tos
        new = (b[14] << 8) | b[15]
        hc = (b[24] << 8) | b[25]
        x = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
        x = (x & 0xFFFF) + (x >> 16)
        x = (x & 0xFFFF) + (x >> 16)
        hc = ~x & 0xFFFF
        b[24], b[25] = hc >> 8, hc & 0xFF
        return bytes(b), True, True
    if ethertype == ETH_P_IPV6 and len(frame) >= 54 and frame[14] >> 4 == 6:
        ecn = (frame[15] >> 4) & 3
        if ecn not in (1, 2):
            return frame, False, False
        b = bytearray(frame)
        b[15] |= 0x30
        return bytes(b), True, True
    return frame, False, False


def is_ect(frame):
    if len(frame) < 16:
        return False
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETH_P_IP:
        return frame[15] & 3 in (1, 2)
    if ethertype == ETH_P_IPV6:
        return (frame[15] >> 4) & 3 in (1, 2)
    return False


class Direction:
    def __init__(self, name, src, dst, delay_ms, jitter_ms, loss_pct, max_queue, bufsize,
                 rate_mbit=0.0, queue_ms=100.0, ecn_ms=0.0):
        self.name = name
        self.src, self.dst = src, dst
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.loss = loss_pct / 100.0
        self.max_queue = max_queue
        self.bufsize = bufsize
        self.queue = collections.deque()   # (due, frame), due non-decreasing
        self.last_due = 0.0
        self.rate = rate_mbit * 1e6 / 8     # bytes per second, 0: no bottleneck
        self.queue_limit = queue_ms / 1000.0
        self.ecn = ecn_ms / 1000.0          # 0: never mark
        self.link_free = 0.0                # when the bottleneck has sent all it holds
        self.rx = self.tx = self.lost = self.overflow = self.txdrop = 0
        self.ect = self.marked = self.rxdrop = 0

    def read(self, now):
        """Drains up to BATCH frames from src into the queue."""
        recv, queue, rnd = self.src.recv, self.queue, random.random
        loss, delay, jitter = self.loss, self.delay, self.jitter
        for _ in range(BATCH):
            try:
                frame = recv(self.bufsize)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENETDOWN:
                    return
                raise
            self.rx += 1
            if loss and rnd() < loss:
                self.lost += 1
                continue
            if len(queue) >= self.max_queue:
                self.overflow += 1
                continue
            due = now
            if self.rate:
                start = self.link_free if self.link_free > now else now
                sojourn = start - now
                if sojourn > self.queue_limit:
                    self.overflow += 1
                    continue
                if is_ect(frame):
                    self.ect += 1
                    if self.ecn and sojourn > self.ecn:
                        frame, _, marked = mark_ce(frame)
                        self.marked += marked
                self.link_free = start + len(frame) / self.rate
                due = self.link_free
            due += delay
            if jitter:
                due += rnd() * jitter
                if due < self.last_due:
                    due = self.last_due
            self.last_due = due
            queue.append((due, frame))

    def flush(self, now):
        """Sends every frame that is due; returns the next due time or None."""
        queue, send = self.queue, self.dst.send
        while queue:
            due, frame = queue[0]
            if due > now:
                return due
            queue.popleft()
            try:
                send(frame)
                self.tx += 1
            except (BlockingIOError, OSError):
                # ENOBUFS/EAGAIN: the far side's qdisc (tbf) or socket buffer
                # is full. Drop, as a router with a full buffer would.
                self.txdrop += 1
        return None

    def stats(self):
        try:
            self.rxdrop += struct.unpack("II", self.src.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
        except OSError:
            pass
        return (f"{self.name}: rx={self.rx} tx={self.tx} lost={self.lost} "
                f"overflow={self.overflow} txdrop={self.txdrop} rxdrop={self.rxdrop} "
                f"ect={self.ect} marked={self.marked} "
                f"queued={len(self.queue)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--near", required=True)
    ap.add_argument("--far", required=True)
    ap.add_argument("--delay-fwd", type=float, default=0.0, help="ms, near -> far")
    ap.add_argument("--delay-rev", type=float, default=0.0, help="ms, far -> near")
    ap.add_argument("--loss-fwd", type=float, default=0.0, help="percent")
    ap.add_argument("--loss-rev", type=float, default=0.0, help="percent")
    ap.add_argument("--jitter", type=float, default=0.0, help="ms, uniform, both ways")
    ap.add_argument("--max-queue", type=int, default=100000, help="frames per direction")
    ap.add_argument("--rate-fwd", type=float, default=0.0, help="Mbit/s bottleneck near -> far (0: none)")
    ap.add_argument("--rate-rev", type=float, default=0.0, help="Mbit/s bottleneck far -> near (0: none)")
    ap.add_argument("--queue-ms", type=float, default=100.0, help="drop-tail queue of a bottleneck, ms at its rate")
    ap.add_argument("--ecn-ms", type=float, default=0.0,
                    help="mark ECT frames CE when their sojourn in a bottleneck's queue exceeds this (0: off)")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    if a.seed is not None:
        random.seed(a.seed)

    near, far = open_iface(a.near), open_iface(a.far)
    bufsize = max(iface_mtu(a.near), iface_mtu(a.far)) + 64
    fwd = Direction("fwd", near, far, a.delay_fwd, a.jitter, a.loss_fwd, a.max_queue, bufsize,
                    a.rate_fwd, a.queue_ms, a.ecn_ms)
    rev = Direction("rev", far, near, a.delay_rev, a.jitter, a.loss_rev, a.max_queue, bufsize,
                    a.rate_rev, a.queue_ms, a.ecn_ms)
    by_sock = {near: fwd, far: rev}
    socks = [near, far]

    running = True

    def stop(_sig, _frm):
        nonlocal running
        running = False

    def dump(_sig, _frm):
        print(fwd.stats(), "|", rev.stats(), flush=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, dump)
    print(f"ready pid={os.getpid()} near={a.near} far={a.far} delay={a.delay_fwd}/{a.delay_rev}ms "
          f"jitter={a.jitter}ms loss={a.loss_fwd}/{a.loss_rev}% rate={a.rate_fwd}/{a.rate_rev}mbit "
          f"queue={a.queue_ms}ms ecn={a.ecn_ms}ms", flush=True)

    clock = time.monotonic
    sel = select.select
    while running:
        now = clock()
        n1, n2 = fwd.flush(now), rev.flush(now)
        nxt = n1 if n2 is None else (n2 if n1 is None else min(n1, n2))
        timeout = None if nxt is None else max(0.0, nxt - clock())
        try:
            readable, _, _ = sel(socks, (), (), timeout)
        except InterruptedError:
            continue
        if readable:
            now = clock()
            for s in readable:
                by_sock[s].read(now)
    print("exit", fwd.stats(), "|", rev.stats(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
