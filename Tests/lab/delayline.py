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
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23   # Linux >= 4.20: do not see our own transmissions
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


class Direction:
    def __init__(self, name, src, dst, delay_ms, jitter_ms, loss_pct, max_queue, bufsize):
        self.name = name
        self.src, self.dst = src, dst
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.loss = loss_pct / 100.0
        self.max_queue = max_queue
        self.bufsize = bufsize
        self.queue = collections.deque()   # (due, frame), due non-decreasing
        self.last_due = 0.0
        self.rx = self.tx = self.lost = self.overflow = self.txdrop = 0

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
            due = now + delay
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
        return (f"{self.name}: rx={self.rx} tx={self.tx} lost={self.lost} "
                f"overflow={self.overflow} txdrop={self.txdrop} queued={len(self.queue)}")


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
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    if a.seed is not None:
        random.seed(a.seed)

    near, far = open_iface(a.near), open_iface(a.far)
    bufsize = max(iface_mtu(a.near), iface_mtu(a.far)) + 64
    fwd = Direction("fwd", near, far, a.delay_fwd, a.jitter, a.loss_fwd, a.max_queue, bufsize)
    rev = Direction("rev", far, near, a.delay_rev, a.jitter, a.loss_rev, a.max_queue, bufsize)
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
          f"jitter={a.jitter}ms loss={a.loss_fwd}/{a.loss_rev}%", flush=True)

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
