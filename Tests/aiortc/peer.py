#!/usr/bin/env python3
"""An aiortc peer for AiortcInteropHeavyTests: unmodified aiortc (PyPI) on one side
of a data-channel-only session, tern (driven in-process by the Swift test) on
the other. Signalling is one JSON object per line, with no network of its own:

  stdin  {"type": "offer"|"answer", "sdp": ...}   tern's description
         {"type": "bye"}                           the test is done: close, exit 0
  stdout {"type": "offer"|"answer", "sdp": ...}   aiortc's description (complete:
                                                   aiortc gathers before it writes)
         {"type": "report", "what": ..., "detail": ...}

What it does, as Tests/browser/peer.html does in Chromium: echoes every message
on each channel tern opens; opens its own channel "from-aiortc", sends 1 B,
64 KiB and 256 KiB on it (those that fit tern's a=max-message-size) and checks
every byte of tern's echo. Reports: "connection" states, "srtp-profile" (the
profile aiortc's DTLS transport says it negotiated), "dtls-failed", "plan" (the
sizes it sends), "channel-LABEL", "echo-ok"/"echo-bad" per message, "all-echoed".

Usage: peer.py offer|answer [--timeout SECONDS] [--verbose]
It exits by itself after --timeout (default 25 s) or when stdin closes.
--verbose logs aiortc's debug messages to stderr; with TERN_AIORTC_LOG=PATH
set instead, they go to the file PATH-offer or PATH-answer.
"""
import argparse
import asyncio
import json
import logging
import os
import re
import sys

from aiortc import RTCPeerConnection, RTCSessionDescription

SIZES = [1, 64 * 1024, 256 * 1024]


def pattern(size, seed):
    """The bytes the test expects: byte i is (i * 31 + seed) mod 256."""
    return bytes((i * 31 + seed) & 0xFF for i in range(size))


def out(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def report(what, detail=""):
    out({"type": "report", "what": what, "detail": str(detail)})


class DTLSLogWatcher(logging.Handler):
    """Reports what aiortc's DTLS transport logs about the handshake's outcome
    (its own words; nothing in aiortc is changed)."""

    def emit(self, record):
        message = record.getMessage()
        negotiated = re.search(r"negotiated (SRTP_\w+)", message)
        if negotiated:
            report("srtp-profile", negotiated.group(1))
        elif "handshake failed" in message:
            report("dtls-failed", message)


def max_message_size(sdp):
    """RFC 8841 §6: the peer's a=max-message-size; absent means 64 KiB, 0 no limit."""
    found = re.search(r"^a=max-message-size:(\d+)", sdp, re.MULTILINE)
    if not found:
        return 65536
    size = int(found.group(1))
    return size if size > 0 else None


async def stdin_reader():
    reader = asyncio.StreamReader(limit=1 << 20)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def next_message(reader, kind):
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("stdin closed")
        message = json.loads(line)
        if message.get("type") == kind:
            return message


async def run(mode):
    reader = await stdin_reader()
    pc = RTCPeerConnection()
    finished = asyncio.get_running_loop().create_future()

    def fail(reason):
        if not finished.done():
            finished.set_exception(RuntimeError(reason))

    @pc.on("connectionstatechange")
    def on_state():
        report("connection", pc.connectionState)
        if pc.connectionState == "failed":
            fail("the connection failed")

    @pc.on("datachannel")
    def on_datachannel(channel):
        report("channel-" + channel.label, channel.label)

        @channel.on("message")
        def on_message(message):
            channel.send(message)

    sizes = []
    echoed = []

    def open_own_channel():
        channel = pc.createDataChannel("from-aiortc")

        @channel.on("open")
        def on_open():
            for seed, size in enumerate(sizes):
                channel.send(pattern(size, seed))

        @channel.on("message")
        def on_message(message):
            index = len(echoed)
            if index >= len(sizes):
                report("echo-bad", f"unexpected message of {len(message)} bytes")
                fail("unexpected echo")
                return
            expected = pattern(sizes[index], index)
            if isinstance(message, bytes) and message == expected:
                report("echo-ok", len(message))
            else:
                first = next((i for i, (a, b) in enumerate(zip(message, expected)) if a != b), min(len(message), len(expected)))
                report("echo-bad", f"echo {index}: {len(message)} bytes, expected {len(expected)}, first difference at {first}")
                fail("an echo differs")
            echoed.append(len(message))
            if len(echoed) == len(sizes) and not finished.done():
                report("all-echoed", len(sizes))
                finished.set_result(None)

    def plan(remote_sdp):
        # Before the remote description is applied: the channel may open
        # while setRemoteDescription still runs.
        limit = max_message_size(remote_sdp)
        sizes[:] = [size for size in SIZES if limit is None or size <= limit]
        report("plan", ",".join(str(size) for size in sizes))

    if mode == "offer":
        open_own_channel()  # the offer needs the data channel's m= section
        await pc.setLocalDescription(await pc.createOffer())
        out({"type": "offer", "sdp": pc.localDescription.sdp})
        remote = await next_message(reader, "answer")
        plan(remote["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=remote["sdp"], type="answer"))
    else:
        remote = await next_message(reader, "offer")
        plan(remote["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=remote["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        out({"type": "answer", "sdp": pc.localDescription.sdp})
        open_own_channel()

    try:
        await finished
        await next_message(reader, "bye")
    finally:
        await pc.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["offer", "answer"])
    parser.add_argument("--timeout", type=float, default=25)
    parser.add_argument("--verbose", action="store_true")
    arguments = parser.parse_args()
    if arguments.verbose:
        logging.basicConfig(level=logging.DEBUG)
    elif os.environ.get("TERN_AIORTC_LOG"):
        # For a failing test: aiortc's and aioice's debug log in a file.
        logging.basicConfig(
            level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s",
            filename=f"{os.environ['TERN_AIORTC_LOG']}-{arguments.mode}")
    dtls_logger = logging.getLogger("aiortc.rtcdtlstransport")
    dtls_logger.setLevel(logging.DEBUG)
    dtls_logger.addHandler(DTLSLogWatcher())
    try:
        asyncio.run(asyncio.wait_for(run(arguments.mode), arguments.timeout))
    except asyncio.TimeoutError:
        report("timeout", arguments.timeout)
        sys.exit(3)
    except EOFError:
        report("stdin-closed")
        sys.exit(4)
    except Exception as error:  # reported, then a failing exit
        report("error", f"{type(error).__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
