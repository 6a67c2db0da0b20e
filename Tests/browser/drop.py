#!/usr/bin/env python3
"""Drops real files and folders on the page as a person's drag from a file
manager would, through Chromium's DevTools protocol (Input.dispatchDragEvent
with file paths: the page gets real FileSystemEntry objects, folders and
empty folders included), clicks Send, prints the code the page shows, then
how the page ended, one JSON object a line:

  {"code": "7-bluebird-caravan", "items": [...]}
  {"state": "done", "status": "...", "hash": "..."}

Usage: drop.py PROFILE_DIR PATH... (Chromium started with
--remote-debugging-port=0 and --user-data-dir=PROFILE_DIR on the page)
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

    def __init__(self, profile):
        deadline = time.time() + 20
        while True:
            try:
                port = int(open(os.path.join(profile, "DevToolsActivePort")).read().split()[0])
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
        else:
            header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(data))
        self.socket.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while True:
            reply = json.loads(self.frame())
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def main():
    profile, paths = sys.argv[1], sys.argv[2:]
    deadline = time.time() + 20
    tools = None
    # Until the page's module has run: while Chromium starts and loads the
    # page, the DevTools port, the page target or its context may not be
    # there yet (an evaluate during the navigation fails).
    while True:
        try:
            tools = tools or DevTools(profile)
            if tools.evaluate("!!document.getElementById('send-start')?.onclick"):
                break
        except (OSError, RuntimeError, EOFError, ValueError, StopIteration) as error:
            if time.time() > deadline:
                raise SystemExit(f"the page did not start: {error}")
            if not isinstance(error, RuntimeError):
                tools = None
        if time.time() > deadline:
            raise SystemExit("the page did not start")
        time.sleep(0.05)
    data = {"items": [], "files": paths, "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        tools.call("Input.dispatchDragEvent", type=kind, x=200, y=300, data=data)
    while tools.evaluate("document.getElementById('send-start').disabled"):
        if time.time() > deadline:
            raise SystemExit("the page did not take the drop")
        time.sleep(0.05)
    items = tools.evaluate("Array.from(document.querySelectorAll('#send-items li'), (li) => li.firstChild.textContent)")
    tools.evaluate("document.getElementById('send-start').click()")
    code = ""
    while not code:
        if time.time() > deadline:
            raise SystemExit("the page showed no code")
        time.sleep(0.05)
        code = tools.evaluate("document.getElementById('send-code').textContent")
    print(json.dumps({"code": code, "items": items}), flush=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        state = tools.evaluate("document.body.dataset.state")
        if state in ("done", "failed", "declined"):
            print(json.dumps({
                "state": state, "status": tools.evaluate("document.getElementById('status').textContent"),
                "hash": tools.evaluate("document.body.dataset.hash ?? ''"),
            }), flush=True)
            return
        time.sleep(0.1)
    print(json.dumps({"state": "timeout"}), flush=True)


main()
