#!/usr/bin/env python3
"""A minimal client of Chromium's DevTools protocol (one page's WebSocket,
RFC 6455 text frames), for drop.py and for tests that drive the page
through it. Run as a script, it is a line-by-line driver of the page of a
Chromium started with --remote-debugging-port=0 --user-data-dir=PROFILE_DIR:
each line of stdin is a JSON command, answered by one line of stdout with
the same id:

  {"id": 1, "eval": "document.body.dataset.state"}   -> {"id": 1, "value": ...}
      (promises are awaited; an exception gives {"id": 1, "error": "..."})
  {"id": 2, "call": "Page.reload", "params": {}}      -> {"id": 2, "value": {result}}
  {"id": 3, "browser": "Browser.setDownloadBehavior", "params": {...}}
      (sent to the browser's own target instead of the page)

Usage: devtools.py PROFILE_DIR
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request


class DevTools:
    """A minimal client of one page's DevTools WebSocket (RFC 6455, text frames)."""

    def __init__(self, profile, browser=False):
        # Chromium can take long to start on a loaded machine.
        deadline = time.time() + 60
        while True:
            try:
                port = int(open(os.path.join(profile, "DevToolsActivePort")).read().split()[0])
                if browser:
                    page = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version"))
                else:
                    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                    page = next(t for t in targets if t["type"] == "page")
                break
            except (OSError, ValueError, StopIteration):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        host, path = page["webSocketDebuggerUrl"][len("ws://"):].split("/", 1)
        address, port = host.rsplit(":", 1)
        self.socket = socket.create_connection((address, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.socket.recv(4096)
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]
        self.last_id = 0

    def read(self, count):
        while len(self.buffer) < count:
            data = self.socket.recv(1 << 16)
            if not data:
                raise EOFError("DevTools closed")
            self.buffer += data
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def frame(self):
        head = self.read(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", self.read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self.read(8))[0]
        return self.read(length)

    def call(self, method, **params):
        self.last_id += 1
        data = json.dumps({"id": self.last_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        if len(data) < 126:
            header = bytes([0x81, 0x80 | len(data)])
        elif len(data) < 65536:
            header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", len(data))
        self.socket.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while True:
            reply = json.loads(self.frame())
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression, wait=False):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=wait)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text", "an exception"))
        return result.get("result", {}).get("value")


def drive(profile):
    page = DevTools(profile)
    browser = None
    for line in sys.stdin:
        command = json.loads(line)
        reply = {"id": command["id"]}
        try:
            if "eval" in command:
                reply["value"] = page.evaluate(command["eval"], wait=True)
            elif "call" in command:
                reply["value"] = page.call(command["call"], **command.get("params", {}))
            elif "browser" in command:
                browser = browser or DevTools(profile, browser=True)
                reply["value"] = browser.call(command["browser"], **command.get("params", {}))
        except (RuntimeError, OSError, EOFError, ValueError) as error:
            reply["error"] = str(error)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    drive(sys.argv[1])
