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
import json
import sys
import time

from devtools import DevTools


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
