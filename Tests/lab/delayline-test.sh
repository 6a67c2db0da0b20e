#!/usr/bin/env bash
# Checks the delay line's own bottleneck and ECN marking with real traffic,
# for each implementation (the C line, then delayline.py): the lan topology,
# a's link at 20 Mbit/s each way through the line (lab.sh shape --rate 20
# --rate-in 20 --queue 50 --ecn 5, 5 ms each way), then UDP a -> b at
# 30 Mbit/s for 1 s with each ECN codepoint set by the sender (IP_TOS), b
# reading each datagram's ECN field (IP_RECVTOS):
#   ECT(0), ECT(1)  most datagrams arrive CE (the queue is past 5 ms), none
#                   arrives with a broken IPv4 checksum (the kernel would
#                   drop it: the count received bounds that), the line's
#                   `marked` counter grows by about the CE count
#   Not-ECT         none arrives CE, `marked` does not grow
#   all             about 20 Mbit/s arrives, the rest is `overflow`
#
#   sudo Tests/lab/delayline-test.sh      (as root; about 30 s)
#   DELAYLINE_TEST_LINES=c                only the C line (make lab-test: the Python
#                                         fallback loses datagrams of its own on a loaded host)
#
# Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
PY=$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || command -v python3)
export LAB_ID=${LAB_ID:-dt$$} LAB_QUIET=1
PASSED=0 FAILED=0
[[ $(id -u) -eq 0 ]] || { echo "delayline-test: must run as root" >&2; exit 2; }
trap 'bash "$LAB" down >/dev/null 2>&1 || true' EXIT
eval "$(bash "$LAB" up lan)"
RUN=${LAB_ROOT:-/tmp/tern-lab}/$LAB_ID
WORK=$(mktemp -d)
trap 'bash "$LAB" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

check() {                      # DESCRIPTION CONDITION(python expression) VALUES...
  if "$PY" -c "import sys; v = [float(x) for x in sys.argv[3:]]; sys.exit(0 if ($2) else 1)" "$@"; then
    PASSED=$((PASSED + 1)); echo "PASS  $1"
  else
    FAILED=$((FAILED + 1)); echo "FAIL  $1 (values: ${*:3})"
  fi
}

# UDP probe: "recv PORT" prints "notect ect1 ect0 ce" counts after 1.5 s of
# silence; "send DEST PORT TOS MBIT SECONDS" paces 1200-byte datagrams.
cat >"$WORK/probe.py" <<'EOF'
import socket, sys, time
if sys.argv[1] == "recv":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.settimeout(1.5)
    counts = [0, 0, 0, 0]
    print("ready", flush=True)
    try:
        while True:
            _, anc, _, _ = s.recvmsg(2048, 64)
            for level, kind, data in anc:
                if level == socket.IPPROTO_IP and kind == socket.IP_TOS:
                    counts[data[0] & 3] += 1
    except socket.timeout:
        pass
    print(counts[0], counts[1], counts[2], counts[3], flush=True)
else:
    dest, port, tos, mbit, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    gap, start, n = 1200 * 8 / (mbit * 1e6), time.monotonic(), 0
    while time.monotonic() - start < seconds:
        s.sendto(b"x" * 1200, (dest, port))
        n += 1
        wait = start + n * gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    print(n)
EOF

marked() { local pid; pid=$(cat "$RUN/delayline-a-eth0.pid"); kill -USR1 "$pid"; sleep 0.3
  grep '^fwd:' "$RUN/delayline-a-eth0.log" | tail -1 | sed 's/ | rev.*//' | grep -o "$1=[0-9]*" | cut -d= -f2; }

for line in ${DELAYLINE_TEST_LINES:-c python}; do
  LAB_DELAYLINE=$line bash "$LAB" shape a eth0 --delay 5 --delay-in 5 --rate 20 --rate-in 20 --queue 50 --ecn 5
  head -1 "$RUN/delayline-a-eth0.log" | grep -q '(C, ' && impl=c || impl=python
  check "$line: the lab runs the $line delay line" "$([[ $impl == "$line" ]] && echo 1 || echo 0) == 1" 0
  for tos in 2 1 0; do
    name=$(case $tos in 2) echo "ECT(0)" ;; 1) echo "ECT(1)" ;; 0) echo "Not-ECT" ;; esac)
    m0=$(marked marked); o0=$(marked overflow)
    bash "$LAB" exec b "$PY" "$WORK/probe.py" recv 9000 >"$WORK/recv.txt" &
    recv=$!
    for _ in $(seq 1 50); do grep -q ready "$WORK/recv.txt" && break; sleep 0.1; done
    sent=$(bash "$LAB" exec a "$PY" "$WORK/probe.py" send "$B_IP" 9000 "$tos" 30 1)
    wait "$recv"
    read -r notect ect1 ect0 ce < <(tail -1 "$WORK/recv.txt")
    m1=$(marked marked); o1=$(marked overflow)
    got=$((notect + ect1 + ect0 + ce))
    # 20 Mbit/s of 1242-byte frames for the second the sender ran, plus what
    # the 50 ms queue held: about 2000 + 100 datagrams; loose for a loaded host.
    check "$line $name: about 20 Mbit/s arrives of 30 sent ($got of $sent)" "1400 <= v[0] <= 2600" "$got" "$sent"
    check "$line $name: the rest was the queue's overflow" "v[0] - v[1] >= 0.8 * (v[2] - v[3])" "$o1" "$o0" "$sent" "$got"
    if [[ $tos == 0 ]]; then
      check "$line Not-ECT: none arrives CE, none marked ($ce CE, marked +$((m1 - m0)))" "v[0] == 0 and v[1] == 0" "$ce" "$((m1 - m0))"
    else
      check "$line $name: most arrive CE ($ce of $got)" "v[0] >= 0.5 * v[1]" "$ce" "$got"
      # A datagram marked may still be lost in b's socket buffer, never the other way.
      check "$line $name: the counter marked grew by about the CE count (+$((m1 - m0)))" "v[1] <= v[0] <= 1.2 * v[1]" "$((m1 - m0))" "$ce"
    fi
  done
done

echo "$PASSED passed, $FAILED failed"
[[ $FAILED == 0 ]]
