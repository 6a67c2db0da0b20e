#!/bin/sh
# Regenerates the man pages in docs/man: swift-argument-parser's
# generate-manual writes the options from the CLI definition; this script
# then gives each page what the generator cannot (ENVIRONMENT, a real EXIT
# STATUS, EXAMPLES), drops its reference to a tern.help(1) that does not
# exist, and puts one sentence on each line with no blank lines in running
# text, so that `mandoc -T lint -W warning` has nothing to say.
# Usage: scripts/man.sh [swift]   (run from the package root; `make man`)
set -eu
swift=${1:-swift}
$swift package --disable-sandbox --allow-writing-to-package-directory generate-manual \
  --configuration debug --multi-page --date 2026-11-21 --authors "the tern developers"
out=.build/plugins/GenerateManual/outputs/tern
for page in tern tern.send tern.receive tern.relay tern.config; do
  python3 - "$out/$page.1" "docs/man/$page.1" "$page" <<'PYTHON'
import re, sys, textwrap

source, target, page = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(source, encoding="utf-8").read().split("\n")

# The exit codes of Sources/tern/ExitCode.swift; a test checks that every
# code there is listed here.
transfer_exits = [
    ("0", "Success: everything arrived and was verified (or the text was delivered)."),
    ("1", "Another failure: a file could not be read or written, the peer broke the protocol, the relay refused."),
    ("2", "Usage: a bad option, path, relay URL or code."),
    ("3", "The code was wrong, expired, or already in use by two other sides."),
    ("4", "The relay or the other side could not be reached, the connection was lost, or --timeout ran out."),
    ("5", "Integrity: a chunk or a file did not match its hash."),
    ("6", "The offer was declined, or a file exists and none of --overwrite, --rename and --skip-existing was given."),
    ("130", "Interrupted by Ctrl-C (SIGINT); the other side is told and partial files are kept to resume."),
    ("143", "Terminated by SIGTERM; as for 130."),
]
relay_exits = [
    ("0", "Stopped by SIGINT or SIGTERM."),
    ("1", "The relay could not start (for example, its address is in use)."),
    ("2", "Usage: a bad option, or a TLS certificate or key that cannot be used."),
]
environment = {
    "tern": [("TERN_RELAY", "The relay's URL for send and receive when --relay is not given; with none anywhere, LAN mode."),
             ("TERN_CODE", "A code agreed in advance, for send and receive when none is given."),
             ("TERN_TURN_SECRET", "The relay's TURN secret when --turn-secret is not given."),
             ("TERN_OUTPUT", "The directory receive writes to when -o is not given."),
             ("TERN_EXISTING", "What receive does with a file that exists: refuse, overwrite, rename or skip."),
             ("TERN_TURN", "auto, or force for --force-relay."),
             ("TERN_LAN", "on or off: LAN mode when no relay is configured (on by default)."),
             ("TERN_QR", "on or off: the QR code of the receive link on a terminal (on by default)."),
             ("XDG_CONFIG_HOME", "Where the config file is: $XDG_CONFIG_HOME/tern/config.toml."),
             ("HOME", "The config file is ~/.config/tern/config.toml when XDG_CONFIG_HOME is not set; ~ in the output setting.")],
    "tern.send": [("TERN_RELAY", "The relay's URL, ws:// or wss://, when --relay is not given."),
                  ("TERN_CODE", "A code agreed in advance, used when --code is not given.")],
    "tern.receive": [("TERN_RELAY", "The relay's URL, ws:// or wss://, when --relay is not given."),
                     ("TERN_CODE", "The code, when none is given as an argument (it then need not appear in the process list).")],
    "tern.relay": [("TERN_TURN_SECRET", "The secret shared with the TURN server when --turn-secret is not given.")],
    "tern.config": [("TERN_RELAY", "The relay's URL."), ("TERN_OUTPUT", "The directory receive writes to."),
                    ("TERN_EXISTING", "refuse, overwrite, rename or skip."), ("TERN_TURN", "auto or force."),
                    ("TERN_LAN", "on or off."), ("TERN_QR", "on or off."),
                    ("XDG_CONFIG_HOME", "Where the config file is: $XDG_CONFIG_HOME/tern/config.toml (~/.config/tern/config.toml without it).")],
}
examples = {
    "tern": [("Send a file; the other machine types the code it prints:", "tern send report.pdf"),
             ("Receive it:", "tern receive 7-bluebird-caravan"),
             ("Run a relay for both:", "tern relay --listen 0.0.0.0:4747"),
             ("On one network with nothing configured, the receiver finds the sender by multicast:", "tern send report.pdf")],
    "tern.send": [("Send a file and a directory:", "tern send report.pdf photos"),
                  ("Send the output of a command as a stream:", "tar c photos | tern send -"),
                  ("Send a short text:", "tern send --text 'the door code is 4711'"),
                  ("In a script, with a code agreed in advance and a deadline:",
                   "TERN_RELAY=wss://relay.example TERN_CODE=42-acme-aftermath tern send --timeout 300 --json build.tar")],
    "tern.receive": [("Receive into the current directory, asking first:", "tern receive 7-bluebird-caravan"),
                     ("Type the code at the prompt (TAB completes its words):", "tern receive"),
                     ("Accept without asking, into a directory:", "tern receive --yes -o incoming 7-bluebird-caravan"),
                     ("Unpack a stream as it arrives:", "tern receive 7-bluebird-caravan | tar x"),
                     ("LAN mode where multicast is filtered: ask the sender's address directly:", "tern receive 347-bluebird-caravan --from 192.168.1.20")],
    "tern.config": [("Show the settings and where each comes from:", "tern config"),
                    ("The same as JSON:", "tern config --json")],
    "tern.relay": [("A relay on the default ports:", "tern relay"),
                   ("With TLS and a TURN server (coturn with use-auth-secret):",
                    "TERN_TURN_SECRET=s3cret tern relay --tls-cert cert.pem --tls-key key.pem --turn-uri turn:turn.example:3478")],
}

def escape(text):
    """Text safe as an mdoc text line: no leading dot or quote, backslashes doubled."""
    text = text.replace("\\", "\\e")
    return "\\&" + text if text[:1] in (".", "'") else text

def text_lines(paragraph):
    """One sentence per line, each wrapped at 80 bytes."""
    out = []
    for sentence in re.split(r"(?<=[.;:])\s+(?=[A-Z'(])", paragraph.strip()):
        for line in textwrap.wrap(sentence, 80, break_long_words=False, break_on_hyphens=False):
            out.append(escape(line))
    return out

def section(title, body):
    return ['.Sh "%s"' % title if " " in title else ".Sh %s" % title] + body

def tag_list(items, width):
    body = [".Bl -tag -width %s" % width]
    for tag, meaning in items:
        body += [".It %s" % tag] + text_lines(meaning)
    return body + [".El"]

result = []
in_text = False
for line in lines:
    if line.startswith(".Xr tern.help 1"):
        continue
    if line.startswith(".Nd "):
        # mandoc: no trailing full stop in a one-line description.
        line = line[:-2] + '"' if line.endswith('."') else line.rstrip(".")
    if line.startswith(".Sh \"EXIT STATUS\""):
        # The generator's `.Ex -std` says only "0 on success, >0 if an
        # error occurs"; ENVIRONMENT stands before EXIT STATUS.
        result += section("ENVIRONMENT", tag_list([("Ev " + n, m) for n, m in environment[page]], "Ds"))
        result += section("EXIT STATUS", tag_list(relay_exits if page == "tern.relay" else transfer_exits, "Ds"))
        result += section("EXAMPLES", sum(([t for t in text_lines(what)] + [".Pp", ".Dl " + command, ".Pp"]
                                          for what, command in examples[page]), [])[:-1])
        continue
    if line.startswith(".Ex "):
        continue
    if line.startswith(".") or line.startswith("'"):
        result.append(line)
    elif line.strip() == "":
        if result and not result[-1].startswith("."):
            result.append(".Pp")
    elif line.startswith("Exit codes:"):
        # The help's sentence of exit codes: EXIT STATUS lists them now.
        continue
    else:
        result += text_lines(line)
# No .Pp right before a list or a section.
cleaned = []
for line in result:
    if cleaned and cleaned[-1] == ".Pp" and (line.startswith(".Sh") or line.startswith(".Bl") or line == ".Pp"):
        cleaned.pop()
    cleaned.append(line)
open(target, "w", encoding="utf-8").write("\n".join(cleaned))
PYTHON
done
