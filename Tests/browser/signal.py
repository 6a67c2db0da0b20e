#!/usr/bin/env python3
"""Signalling for the browser interop test: serves peer.html, passes the
test's SDP offer to the page and the page's answer back, and collects the
page's reports. The test talks to it with plain HTTP on loopback:

  PUT /offer (body: SDP)      the test's offer, for the page to fetch
  PUT /cases (body: JSON)     inputs for a test page (crypto.html)
  GET /answer                 204 until the page posted its answer
  GET /reports                every report so far, one JSON object per line
  GET /NAME.html, /NAME.js    a page of this directory
  GET /web/NAME               a file of WEB_DIR (the built browser page)

Usage: signal.py PORT_FILE [WEB_DIR]
(binds 127.0.0.1 on a free port, writes it to PORT_FILE)
"""
import http.server
import json
import os
import sys
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = sys.argv[2] if len(sys.argv) > 2 else None
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".wasm": "application/wasm"}
state = {"offer": None, "answer": None, "cases": None, "reports": []}


def file_reply(handler, directory, name):
    """Serves directory/name for a plain file name with a known type."""
    extension = os.path.splitext(name)[1]
    if directory is None or "/" in name or name.startswith(".") or extension not in TYPES:
        return handler.reply(404)
    try:
        with open(os.path.join(directory, name), "rb") as f:
            handler.reply(200, f.read(), TYPES[extension])
    except OSError:
        handler.reply(404)
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > 16 << 20:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        with lock:
            if self.path in ("/", "/peer.html"):
                with open(os.path.join(HERE, "peer.html"), "rb") as page:
                    self.reply(200, page.read(), "text/html; charset=utf-8")
            elif self.path == "/offer":
                offer = state["offer"]
                self.reply(200, offer) if offer else self.reply(204)
            elif self.path == "/answer":
                answer = state["answer"]
                self.reply(200, answer) if answer else self.reply(204)
            elif self.path == "/reports":
                self.reply(200, "".join(json.dumps(r) + "\n" for r in state["reports"]).encode())
            elif self.path == "/cases":
                cases = state["cases"]
                self.reply(200, cases, "application/json") if cases else self.reply(204)
            elif path.startswith("/web/"):
                file_reply(self, WEB_DIR, path[len("/web/"):])
            else:
                file_reply(self, HERE, path[1:])

    def do_PUT(self):
        if self.path not in ("/offer", "/cases"):
            return self.reply(404)
        body = self.body()
        with lock:
            state[self.path[1:]] = body
        self.reply(200)

    def do_POST(self):
        body = self.body()
        with lock:
            if self.path == "/answer":
                state["answer"] = body
            elif self.path == "/report":
                state["reports"].append(json.loads(body))
            else:
                return self.reply(404)
        self.reply(200)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as port_file:
    port_file.write(str(server.server_address[1]))
server.serve_forever()
