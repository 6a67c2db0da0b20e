#!/usr/bin/env bash
# Measures what `lab.sh shape` really does on this machine (the numbers in
# docs/lab.md): RTT with and without delay, loss over 1000 flood pings, TCP
# throughput under a tbf rate and through the delay box. Uses the `lan`
# topology (a and b on one segment, a's eth0 shaped). About 40 s, as root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
TOOL=$HERE/labtool.py
PY=$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || command -v python3)
export LAB_ID=${LAB_ID:-ms$$} LAB_QUIET=1
trap '"$LAB" down >/dev/null 2>&1 || true' EXIT

eval "$("$LAB" up lan)"

rtt() { "$LAB" exec a ping -q -c 50 -i 0.02 "$B_IP" | sed -n 's|rtt min/avg/max/mdev = \(.*\) ms|\1|p'; }
loss() { "$LAB" exec a ping -q -f -c 1000 -W 1 "$B_IP" | sed -n 's/.* \([0-9.]*%\) packet loss.*/\1/p'; }
mbit() {
  local f; f=$(mktemp)
  "$LAB" exec b "$PY" "$TOOL" tcp-sink --port 5201 >"$f" 2>&1 &
  local sink=$!
  sleep 0.4
  "$LAB" exec a "$PY" "$TOOL" tcp-send --dest "$B_IP:5201" --seconds 5 >/dev/null
  wait $sink
  sed -n 's/.*mbit=//p' "$f"; rm -f "$f"
}
shape() { "$LAB" shape a eth0 "$@"; }
row() { printf '%-44s %s\n' "$1" "$2"; }

echo "shape a eth0 ...                              result"
"$LAB" unshape a eth0
row "(none) RTT min/avg/max/mdev ms" "$(rtt)"
row "(none) TCP Mbit/s" "$(mbit)"
shape --delay 1 --delay-in 1;   row "--delay 1 --delay-in 1: TCP Mbit/s (box)" "$(mbit)"
shape --delay 10 --delay-in 10; row "--delay 10 --delay-in 10: RTT" "$(rtt)"
shape --delay 50;               row "--delay 50: RTT" "$(rtt)"
shape --delay 25 --delay-in 25 --jitter 10; row "--delay 25 --delay-in 25 --jitter 10: RTT" "$(rtt)"
shape --delay 25 --delay-in 25; row "--delay 25 --delay-in 25: TCP Mbit/s" "$(mbit)"
shape --loss 1;                 row "--loss 1: ping loss" "$(loss)"
shape --loss 5;                 row "--loss 5: ping loss" "$(loss)"
shape --loss 20;                row "--loss 20: ping loss" "$(loss)"
shape --loss 10 --loss-in 10;   row "--loss 10 --loss-in 10: ping loss (exp. 19%)" "$(loss)"
shape --rate 10;                row "--rate 10: TCP Mbit/s" "$(mbit)"
shape --rate 50;                row "--rate 50: TCP Mbit/s" "$(mbit)"
shape --rate 100;               row "--rate 100: TCP Mbit/s" "$(mbit)"
shape --rate 100 --delay 20 --delay-in 20; row "--rate 100 --delay 20 --delay-in 20: TCP" "$(mbit)"
shape --rate 10 --delay 20 --delay-in 20 --loss 1; row "--rate 10, 40 ms RTT, 1% loss: TCP" "$(mbit)"
