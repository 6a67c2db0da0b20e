#!/usr/bin/env python3
"""Load and soak for a running `tern relay` (docs/relay.md, "Past one machine").

Each pairing is what the relay sees of a real one: side A connects, allocates
a nameplate; side B connects and claims it; each side adds four messages
(the sizes of CPace's share and tag, an offer and an answer) and reads the
peer's four; both close `happy`. No PAKE runs: this measures the relay, not
the clients.

    scripts/relay-soak.py --port 4747 --pid PID --pairings 5000 --concurrency 64 --procs 2
    scripts/relay-soak.py --port 4747 --pid PID --soak 10000      # in sequence, RSS every 1000
    scripts/relay-soak.py --port 4747 --pid PID --hold 20000      # connections held in mailboxes

Loopback only: the relay must listen on 127.0.0.1 (or 0.0.0.0); client
connections come from 127.0.0.2 and up, so per-address limits can stay on
(--sources N spreads them over N addresses). Every loop is bounded in count
and time (--deadline), and the script stops by itself.
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import secrets
import struct
import sys
import time

MESSAGE_SIZES = [32, 32, 400, 200]  # share, tag, offer, answer (sealed, roughly)
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class Client:
    """A WebSocket client speaking just enough RFC 6455 for the relay."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port, source):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writer.write(
            (
                "GET /v1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n" % (port, KEY)
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("upgrade refused: %r" % head[:80])
        client = cls(reader, writer)
        welcome = await client.recv()
        if welcome.get("type") != "welcome":
            raise RuntimeError("no welcome: %r" % welcome)
        return client

    def send(self, obj):
        payload = json.dumps(obj, separators=(",", ":")).encode()
        mask = secrets.token_bytes(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def recv(self):
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 1:
                return json.loads(payload)
            if opcode == 8:
                return {"type": "websocket-close"}
            if opcode == 9:  # ping: answer it
                self.writer.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)

    def close(self):
        self.writer.close()


def side_id():
    return secrets.token_hex(16)


async def pair_once(port, source):
    a = await Client.connect(port, source)
    a.send({"type": "allocate", "side": side_id()})
    allocated = await a.recv()
    if allocated.get("type") != "allocated":
        raise RuntimeError("allocate: %r" % allocated)
    b = await Client.connect(port, source)
    b.send({"type": "claim", "nameplate": allocated["nameplate"], "side": side_id()})
    claimed = await b.recv()
    if claimed.get("type") != "claimed":
        raise RuntimeError("claim: %r" % claimed)
    for side in (a, b):
        for seq, size in enumerate(MESSAGE_SIZES):
            side.send({"type": "add", "seq": seq, "body": base64.b64encode(os.urandom(size)).decode()})
    for side in (a, b):
        seen = 0
        while seen < len(MESSAGE_SIZES):
            frame = await side.recv()
            if frame.get("type") == "message":
                seen += 1
            elif frame.get("type") in ("error", "websocket-close"):
                raise RuntimeError("during messages: %r" % frame)
    for side in (a, b):
        side.send({"type": "close", "mood": "happy"})
    for side in (a, b):
        while (await side.recv()).get("type") not in ("closed", "websocket-close"):
            pass
        side.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descriptors(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def source_address(index, sources):
    """127.0.0.2 to 127.0.0.251, then 127.0.1.2 and on: another client address each."""
    n = index % sources
    return "127.0.%d.%d" % (n // 250, 2 + n % 250)


async def run_pairings(port, count, concurrency, first_source, sources, deadline):
    done = 0
    failures = 0
    queue = iter(range(count))
    lock = asyncio.Lock()

    async def worker(w):
        nonlocal done, failures
        while time.monotonic() < deadline:
            async with lock:
                index = next(queue, None)
            if index is None:
                return
            try:
                await asyncio.wait_for(pair_once(port, source_address(first_source + index, sources)), 30)
                done += 1
            except Exception as error:  # noqa: BLE001: counted and reported
                failures += 1
                if failures <= 3:
                    print("pairing failed: %s" % error, file=sys.stderr)

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done, failures


def process_main(args, offset, count, results):
    deadline = time.monotonic() + args.deadline
    done, failures = asyncio.run(run_pairings(args.port, count, args.concurrency, offset, args.sources, deadline))
    results.put((done, failures))


def load(args):
    start_cpu = cpu_seconds(args.pid) if args.pid else None
    results = multiprocessing.Queue()
    per = args.pairings // args.procs
    start = time.monotonic()
    procs = [multiprocessing.Process(target=process_main, args=(args, i * per, per, results)) for i in range(args.procs)]
    for p in procs:
        p.start()
    peak_rss = 0
    while any(p.is_alive() for p in procs):
        if args.pid:
            peak_rss = max(peak_rss, rss_kib(args.pid))
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    done = failures = 0
    for _ in procs:
        d, f = results.get()
        done += d
        failures += f
    line = "load: %d pairings (%d failed) in %.2f s = %.0f pairings/s, %d clients in parallel" % (
        done, failures, elapsed, done / elapsed, args.concurrency * args.procs)
    if args.pid:
        cpu = cpu_seconds(args.pid) - start_cpu
        line += "; relay CPU %.2f s = %.0f%% of one core, %.2f ms per pairing; relay peak RSS %d MiB" % (
            cpu, 100 * cpu / elapsed, 1000 * cpu / max(done, 1), peak_rss // 1024)
    print(line)
    return failures == 0


def soak(args):
    async def run():
        deadline = time.monotonic() + args.deadline
        samples = []
        start = time.monotonic()
        for index in range(args.soak):
            if time.monotonic() > deadline:
                print("soak: deadline reached after %d pairings" % index)
                return False
            await asyncio.wait_for(pair_once(args.port, source_address(index, args.sources)), 30)
            if args.pid and (index + 1) % 1000 == 0:
                samples.append(rss_kib(args.pid))
                print("soak: %d pairings, relay RSS %d KiB, %d descriptors" % (index + 1, samples[-1], descriptors(args.pid)))
        elapsed = time.monotonic() - start
        print("soak: %d pairings in sequence in %.1f s (%.0f/s)" % (args.soak, elapsed, args.soak / elapsed))
        if len(samples) >= 2:
            print("soak: relay RSS from %d to %d KiB (first and last sample), max %d" % (samples[0], samples[-1], max(samples)))
        return True

    return asyncio.run(run())


def hold(args):
    async def run():
        clients = []
        readers = []
        start_rss = rss_kib(args.pid) if args.pid else 0
        start = time.monotonic()
        deadline = start + args.deadline
        gate = asyncio.Semaphore(64)
        refused = 0

        async def keep_reading(client):
            # Answers the relay's pings (every 20 s of silence), so held
            # connections are not dropped as dead.
            try:
                while True:
                    await client.recv()
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                pass

        async def open_one(index):
            nonlocal refused
            async with gate:
                if time.monotonic() > deadline:
                    return
                try:
                    client = await Client.connect(args.port, source_address(index, args.sources))
                    client.send({"type": "allocate", "side": side_id()})
                    reply = await client.recv()
                except (OSError, RuntimeError, asyncio.IncompleteReadError):
                    refused += 1
                    return
                if reply.get("type") != "allocated":
                    refused += 1
                    client.close()
                    return
                clients.append(client)
                readers.append(asyncio.ensure_future(keep_reading(client)))

        await asyncio.gather(*(open_one(i) for i in range(args.hold)))
        elapsed = time.monotonic() - start
        line = "hold: %d connections each in its own mailbox (%d refused), opened in %.1f s" % (len(clients), refused, elapsed)
        if args.pid:
            await asyncio.sleep(2)
            cpu0 = cpu_seconds(args.pid)
            await asyncio.sleep(30)
            idle = (cpu_seconds(args.pid) - cpu0) / 30
            rss = rss_kib(args.pid)
            line += "; relay RSS %d -> %d MiB (%.1f KiB per connection), %d descriptors, CPU while held %.1f%% of one core" % (
                start_rss // 1024, rss // 1024, (rss - start_rss) / max(len(clients), 1), descriptors(args.pid), 100 * idle)
        print(line)
        for reader in readers:
            reader.cancel()
        for client in clients:
            client.close()
        return True

    return asyncio.run(run())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, help="the relay's process id, to read its CPU time, memory and descriptors")
    parser.add_argument("--pairings", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32, help="pairings in flight per process")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--soak", type=int, default=0, help="pairings one after another")
    parser.add_argument("--hold", type=int, default=0, help="connections to hold, each in a mailbox")
    parser.add_argument("--sources", type=int, default=200, help="client source addresses, from 127.0.0.2 on")
    parser.add_argument("--deadline", type=float, default=600, help="stop after this many seconds")
    args = parser.parse_args()
    ok = True
    if args.pairings:
        ok &= load(args)
    if args.soak:
        ok &= soak(args)
    if args.hold:
        ok &= hold(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
