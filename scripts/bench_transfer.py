#!/usr/bin/env python3
"""Timing half of scripts/bench-transfer.sh (python3 stdlib only).

    bench_transfer.py sha256 FILE
        prints the file's SHA-256 (hex).
    bench_transfer.py run --tool NAME --bytes N --src-sha256 HEX --outdir DIR
                          --logdir DIR --sender CMD --receiver CMD [...]
        one transfer: starts the sender, waits until it is ready (a regex on
        its output, or a timeout), starts the receiver, waits for both, checks
        the received file, prints one JSON line on stdout. Exit 0 when the
        received file is byte-identical and both sides exited 0, 1 otherwise.
    bench_transfer.py compare RESULTS.jsonl
        reads the run lines, prints the comparison line (medians per tool).

CMD strings are split with shlex. Each process's resource use comes from
wait4() on its own pid: `ip netns exec` execs the command (no fork), so the
pid we start is the tool's, and ru_maxrss / ru_utime / ru_stime are the
tool's own (plus any children it waited for).
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time

GIB = 1 << 30
MB = 1e6


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(4 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


class Proc:
    """A child with its stdout/stderr read (and timestamped) by threads and
    its exit collected by wait4 in another thread."""

    def __init__(self, name, argv, cwd, logdir, env=None, on_line=None):
        self.name = name
        self.on_line = on_line
        self.lines = []            # (t, stream, text), bounded
        self.exited = threading.Event()
        self.t_exit = None
        self.status = None
        self.rusage = None
        self.t_start = time.monotonic()
        self.p = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.readers = [
            threading.Thread(target=self._read, args=(self.p.stdout, "out", os.path.join(logdir, f"{name}.stdout")), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stderr, "err", os.path.join(logdir, f"{name}.stderr")), daemon=True),
        ]
        for t in self.readers:
            t.start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        _, status, ru = os.wait4(self.p.pid, 0)
        self.t_exit = time.monotonic()
        self.status = status
        self.rusage = ru
        # Tell Popen the child is gone so it never waits for it again.
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.exited.set()

    def _read(self, stream, which, path):
        fd = stream.fileno()
        buf = b""
        with open(path, "wb") as logf:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                t = time.monotonic()
                logf.write(chunk)
                buf += chunk
                # Lines end with \n, progress bars (tqdm) redraw with \r.
                parts = re.split(rb"[\r\n]", buf)
                buf = parts.pop()
                for raw in parts:
                    if raw.strip():
                        self._line(t, which, raw.decode("utf-8", "replace"))
                if len(buf) > (1 << 20):
                    buf = buf[-4096:]
            if buf.strip():
                self._line(time.monotonic(), which, buf.decode("utf-8", "replace"))

    def _line(self, t, which, text):
        if len(self.lines) < 20000:
            self.lines.append((t, which, text))
        if self.on_line:
            self.on_line(t, which, text)

    @property
    def exit_code(self):
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)

    def wait(self, timeout):
        return self.exited.wait(timeout)

    def stop(self):
        """SIGTERM, then SIGKILL after 3 s; only this child's pid."""
        if self.exited.is_set():
            return
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                return
            if self.exited.wait(grace):
                return

    def resources(self, nbytes):
        if self.rusage is None:
            return {"exit": None}
        cpu = self.rusage.ru_utime + self.rusage.ru_stime
        return {
            "exit": self.exit_code,
            "wall_s": round(self.t_exit - self.t_start, 3),
            "cpu_user_s": round(self.rusage.ru_utime, 3),
            "cpu_sys_s": round(self.rusage.ru_stime, 3),
            "cpu_s_per_GiB": round(cpu / (nbytes / GIB), 3) if nbytes else None,
            "peak_rss_MiB": round(self.rusage.ru_maxrss / 1024, 1),   # ru_maxrss is KiB on Linux
        }

    def tail(self, n=8):
        return [f"[{w}] {s}" for _, w, s in self.lines[-n:]]


def first_nonempty_file(outdir):
    for root, _, files in os.walk(outdir):
        for f in files:
            try:
                if os.stat(os.path.join(root, f)).st_size > 0:
                    return True
            except FileNotFoundError:
                pass
    return False


def received_files(outdir):
    out = []
    for root, _, files in os.walk(outdir):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return sorted(out)


def cmd_run(a):
    os.makedirs(a.logdir, exist_ok=True)
    os.makedirs(a.outdir, exist_ok=True)
    if os.listdir(a.outdir):
        sys.exit(f"bench: output dir {a.outdir} is not empty")
    ready_re = re.compile(a.sender_ready) if a.sender_ready else None
    path_re = re.compile(a.path_regex) if a.path_regex else None
    env = dict(os.environ)
    result = {"tool": a.tool, "run": a.run, "bytes": a.bytes, "ok": False}
    errors = []

    # --- sender ---------------------------------------------------------
    sender_ready = threading.Event()
    ready_at = [None]

    def sender_line(t, which, text):
        if ready_re and ready_at[0] is None and ready_re.search(text):
            ready_at[0] = t
            sender_ready.set()

    sender = Proc("sender", shlex.split(a.sender), a.sender_cwd, a.logdir, env, sender_line)
    deadline = time.monotonic() + a.ready_timeout
    while not sender_ready.is_set() and not sender.exited.is_set() and time.monotonic() < deadline:
        sender_ready.wait(0.005)
    if ready_at[0] is not None:
        result["sender_ready_ms"] = round((ready_at[0] - sender.t_start) * 1000, 1)
    elif sender.exited.is_set():
        errors.append(f"sender exited {sender.exit_code} before it was ready; receiver not started")
    elif ready_re:
        errors.append(f"sender printed nothing matching /{a.sender_ready}/ within {a.ready_timeout} s; receiver started anyway")

    # --- receiver -------------------------------------------------------
    events = {}          # first arrival time of each JSON event (tern --json)
    last_event = {}
    path_seen = [None]

    def receiver_line(t, which, text):
        if which == "out" and text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "event" in obj:
                ev = str(obj["event"])
                events.setdefault(ev, t)
                last_event[ev] = obj
        if path_re and path_seen[0] is None:
            m = path_re.search(text)
            if m:
                path_seen[0] = m.group(1) if m.groups() else m.group(0)

    receiver = None
    file_first = [None]
    if not sender.exited.is_set():
        receiver = Proc("receiver", shlex.split(a.receiver), a.outdir, a.logdir, env, receiver_line)

        # Time to the first received byte on disk: poll the output dir
        # every 2 ms until a file there has bytes (the tool's own write
        # buffering, e.g. Python's 8 KiB, delays this slightly).
        def poll():
            while not receiver.exited.is_set():
                if first_nonempty_file(a.outdir):
                    file_first[0] = time.monotonic()
                    return
                time.sleep(0.002)

        threading.Thread(target=poll, daemon=True).start()
        if not receiver.wait(a.timeout):
            errors.append(f"receiver still running after {a.timeout} s: stopped")
            receiver.stop()
            receiver.wait(10)
    # The sender may finish just after the receiver (closing handshakes).
    if not sender.wait(a.sender_grace if receiver else 0.1):
        errors.append(f"sender still running {a.sender_grace} s after the receiver exited: stopped")
        sender.stop()
        sender.wait(10)
    for t in sender.readers + (receiver.readers if receiver else []):
        t.join(5)

    # --- numbers --------------------------------------------------------
    result["sender"] = sender.resources(a.bytes)
    if receiver and receiver.t_exit is not None:
        e2e = receiver.t_exit - receiver.t_start
        result["e2e_s"] = round(e2e, 3)
        result["e2e_MBps"] = round(a.bytes / MB / e2e, 1)
        result["receiver"] = receiver.resources(a.bytes)
        t0 = receiver.t_start
        if "progress" in events:
            result["first_byte_ms"] = round((events["progress"] - t0) * 1000, 1)
            result["first_byte_source"] = "first progress event"
        if file_first[0] is not None:
            result["first_byte_file_ms"] = round((file_first[0] - t0) * 1000, 1)
        for ev in ("paired", "connected"):
            if ev in events:
                result[f"{ev}_ms"] = round((events[ev] - t0) * 1000, 1)
        if "connected" in last_event:
            c = last_event["connected"]
            result["path"] = c.get("path")
        if path_seen[0]:
            result["path"] = "relayed" if "relay" in path_seen[0] else "direct"
            result["path_detail"] = path_seen[0]
        if "done" in last_event:
            d = last_event["done"]
            result["tool_reported"] = {k: d[k] for k in ("bytes", "seconds", "files") if k in d}
        if receiver.exit_code != 0:
            errors.append(f"receiver exited {receiver.exit_code}")
    if sender.exit_code not in (0, None) and not any(e.startswith("sender exited") for e in errors):
        errors.append(f"sender exited {sender.exit_code}")

    # --- byte check -----------------------------------------------------
    files = received_files(a.outdir)
    if not files:
        result["verify"] = "no file received"
    elif len(files) > 1:
        result["verify"] = f"{len(files)} files received, expected 1: " + ", ".join(os.path.relpath(f, a.outdir) for f in files[:5])
    else:
        size = os.path.getsize(files[0])
        if size != a.bytes:
            result["verify"] = f"size {size}, expected {a.bytes}"
        elif sha256_of(files[0]) != a.src_sha256:
            result["verify"] = "sha256 differs"
        else:
            result["verify"] = "identical"
    if not a.keep:
        for f in files:
            os.unlink(f)
    if result["verify"] != "identical":
        errors.append("received file: " + result["verify"])
    if result["verify"] != "identical" and "e2e_s" in result:
        result["e2e_MBps"] = None     # no rate without the bytes
    result["ok"] = not errors
    if errors:
        result["errors"] = errors
        log(f"{a.tool} run {a.run}: FAILED: " + "; ".join(errors))
        for name, p in (("sender", sender), ("receiver", receiver)):
            if p:
                for line in p.tail():
                    log(f"  {name} {line}")
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def cmd_compare(a):
    runs = {}
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if "tool" in r and "e2e_s" in r:
                runs.setdefault(r["tool"], []).append(r)

    def summary(tool):
        rs = [r for r in runs.get(tool, []) if r.get("ok")]
        if not rs:
            return None
        med = lambda xs: round(statistics.median(xs), 3) if xs else None
        s = {
            "ok_runs": len(rs),
            "runs": len(runs.get(tool, [])),
            "e2e_s": med([r["e2e_s"] for r in rs]),
            "e2e_MBps": med([r["e2e_MBps"] for r in rs]),
            "peak_rss_MiB_max": max(max(r["sender"]["peak_rss_MiB"], r["receiver"]["peak_rss_MiB"]) for r in rs),
        }
        fb = [r["first_byte_ms"] for r in rs if "first_byte_ms" in r]
        if fb:
            s["first_byte_ms"] = med(fb)
        return s

    t, w = summary("tern"), summary("wormhole")
    out = {"comparison": "tern/wormhole", "tern": t, "wormhole": w}
    if t and w:
        ratio = w["e2e_s"] / t["e2e_s"]
        out["rate_ratio"] = round(ratio, 2)
        # Run by run too: run N of each tool ran next to each other, so the
        # machine's drift over a set (its speed moves within minutes) weighs
        # less on these than on the medians. The goal is still judged on the
        # medians.
        by_run = {tool: {r["run"]: r for r in runs.get(tool, []) if r.get("ok")} for tool in ("tern", "wormhole")}
        pairs = sorted(set(by_run["tern"]) & set(by_run["wormhole"]))
        if pairs:
            per_run = [round(by_run["wormhole"][n]["e2e_s"] / by_run["tern"][n]["e2e_s"], 2) for n in pairs]
            out["rate_ratio_by_run"] = per_run
            out["rate_ratio_by_run_median"] = round(statistics.median(per_run), 2)
        out["goals"] = {
            "rate_ratio>=1.5": ratio >= 1.5,
            "peak_rss<64MiB": t["peak_rss_MiB_max"] < 64,
            "first_byte<150ms": t.get("first_byte_ms") is not None and t["first_byte_ms"] < 150,
        }
    else:
        missing = [n for n, s in (("tern", t), ("wormhole", w)) if s is None]
        out["rate_ratio"] = None
        out["note"] = "no successful run of: " + ", ".join(missing)
    print(json.dumps(out), flush=True)
    lan = summary("tern-lan")
    if lan:
        # LAN mode against the relay: the same data path, only the
        # rendezvous differs (the sender's own, found by the beacon).
        lan_out = {"comparison": "tern-lan/tern", "tern-lan": lan, "tern": t}
        if t:
            lan_out["rate_ratio"] = round(t["e2e_s"] / lan["e2e_s"], 2)
            by_run = {tool: {r["run"]: r for r in runs.get(tool, []) if r.get("ok")} for tool in ("tern", "tern-lan")}
            pairs = sorted(set(by_run["tern"]) & set(by_run["tern-lan"]))
            if pairs:
                lan_out["rate_ratio_by_run"] = [round(by_run["tern"][n]["e2e_s"] / by_run["tern-lan"][n]["e2e_s"], 2) for n in pairs]
        print(json.dumps(lan_out), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sha256")
    s.add_argument("file")
    r = sub.add_parser("run")
    r.add_argument("--tool", required=True)
    r.add_argument("--run", type=int, default=1)
    r.add_argument("--bytes", type=int, required=True)
    r.add_argument("--src-sha256", required=True)
    r.add_argument("--outdir", required=True)
    r.add_argument("--logdir", required=True)
    r.add_argument("--sender", required=True, help="command line (shlex)")
    r.add_argument("--sender-cwd", default=None)
    r.add_argument("--sender-ready", default=None, help="regex on the sender's output that means 'start the receiver'")
    r.add_argument("--ready-timeout", type=float, default=10.0)
    r.add_argument("--receiver", required=True, help="command line (shlex); runs in --outdir")
    r.add_argument("--path-regex", default=None, help="regex on the receiver's output naming the connection path (group 1)")
    r.add_argument("--timeout", type=float, default=900.0, help="seconds the receiver may take")
    r.add_argument("--sender-grace", type=float, default=30.0)
    r.add_argument("--keep", action="store_true", help="keep the received file")
    c = sub.add_parser("compare")
    c.add_argument("results")
    a = ap.parse_args()
    if a.cmd == "sha256":
        print(sha256_of(a.file))
        return 0
    if a.cmd == "run":
        return cmd_run(a)
    return cmd_compare(a)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
