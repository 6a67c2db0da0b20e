#!/usr/bin/env python3
"""Signalling for the browser interop test: serves peer.html, passes the
test's SDP offer to the page and the page's answer back, and collects the
page's reports. The test talks to it with plain HTTP on loopback:

  PUT /offer (body: SDP)      the test's offer, for the page to fetch
  GET /answer                 204 until the page posted its answer
  GET /reports                every report so far, one JSON object per line

Usage: signal.py PORT_FILE   (binds 127.0.0.1 on a free port, writes it to PORT_FILE)
"""
import http.server
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
state = {"offer": None, "answer": None, "reports": []}
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
        if length > 1 << 20:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def do_GET(self):
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
            else:
                self.reply(404)

    def do_PUT(self):
        if self.path != "/offer":
            return self.reply(404)
        body = self.body()
        with lock:
            state["offer"] = body
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
