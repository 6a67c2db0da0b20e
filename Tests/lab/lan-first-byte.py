#!/usr/bin/env python3
"""LAN mode's receiver start to first byte, in the lab (docs/architecture.md, "LAN mode").

    sudo Tests/lab/lan-first-byte.py [--runs 20] [--ipv6] [--tern PATH]

Builds the `lan` topology (with --ipv6: `lan6`, IPv4 multicast dropped in and
out on a and b, so the receiver can only find the sender through ff02::74:6e).
Each run starts `tern send --json` of a 1 MB file on a with nothing
configured, waits for its code, then starts `tern receive CODE --json` on b
and times, from just before that start, the receiver's `found` event and its
first `progress` event (the first bytes of the file written). Both tern run
as the unprivileged user. Prints every run and min / median / max.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(HERE, "lab.sh")


def lab(*args, env):
    return subprocess.run(["bash", LAB, *args], env=env, check=True, capture_output=True, text=True).stdout


def events(process):
    """Yields (monotonic time of arrival, event) for each JSON line."""
    for line in process.stdout:
        try:
            yield time.monotonic(), json.loads(line)
        except ValueError:
            continue


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ipv6", action="store_true")
    parser.add_argument("--tern", default=os.path.join(HERE, "../../.build/debug/tern"))
    options = parser.parse_args()
    tern = os.path.abspath(options.tern)
    env = dict(os.environ, LAB_ID=os.environ.get("LAB_ID", f"fb{os.getpid() % 100000}"), LAB_QUIET="1")
    work = tempfile.mkdtemp(prefix="tern-first-byte.")
    os.chmod(work, 0o777)
    payload = os.path.join(work, "payload.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(1_000_000))
    os.chmod(payload, 0o644)
    lab("up", "lan6" if options.ipv6 else "lan", env=env)
    try:
        if options.ipv6:
            for host in ["a", "b"]:
                for chain in ["INPUT", "OUTPUT"]:
                    lab("exec", host, "iptables", "-w", "-A", chain, "-d", "224.0.0.0/4", "-j", "DROP", env=env)
        found, first = [], []
        for run in range(1, options.runs + 1):
            out = os.path.join(work, f"out{run}")
            os.mkdir(out)
            os.chmod(out, 0o777)
            sender = subprocess.Popen(["bash", LAB, "user", "a", tern, "send", "--json", "--timeout", "60", payload],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            code = next(event["code"] for _, event in events(sender) if event.get("event") == "code")
            started = time.monotonic()
            receiver = subprocess.Popen(["bash", LAB, "user", "b", tern, "receive", code, "--json", "--yes", "-o", out, "--timeout", "60"],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            found_ms = first_ms = host = None
            for at, event in events(receiver):
                if event.get("event") == "found" and found_ms is None:
                    found_ms, host = (at - started) * 1000, event.get("host")
                if event.get("event") == "progress" and first_ms is None:
                    first_ms = (at - started) * 1000
            status = receiver.wait(timeout=60), sender.wait(timeout=60)
            if status != (0, 0) or first_ms is None or found_ms is None:
                print(f"run {run}: failed (receiver, sender exit {status})", file=sys.stderr)
                continue
            found.append(found_ms)
            first.append(first_ms)
            print(f"run {run}: found {found_ms:.0f} ms (at {host}), first byte {first_ms:.0f} ms", flush=True)
        if first:
            print(f"{'lan6, IPv4 multicast dropped' if options.ipv6 else 'lan'}: {len(first)}/{options.runs} runs; "
                  f"first byte median {statistics.median(first):.0f} ms (min {min(first):.0f}, max {max(first):.0f}); "
                  f"found median {statistics.median(found):.0f} ms (min {min(found):.0f}, max {max(found):.0f}); "
                  f"load average {os.getloadavg()[0]:.1f}")
        return 0 if len(first) == options.runs else 1
    finally:
        lab("down", env=env)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
