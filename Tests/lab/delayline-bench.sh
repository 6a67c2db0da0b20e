#!/usr/bin/env bash
# Measures the lab's delay lines at a high rate (the numbers in docs/lab.md):
# the lan topology, a's link delayed DLB_DELAY ms each way through the delay
# box at DLB_RATE Mbit/s with a 100 ms drop-tail queue, then per round each
# case of DLB_CASES in turn, a delay line and where the rate is:
#   python:tbf  delayline.py (LAB_DELAYLINE=python), the rate a tbf on both
#               of the box's egress veths (as scripts/bench-lossy.sh shapes
#               the link by default)
#   c:tbf       the C delay line, the same tbf
#   c:line      the C delay line with the rate and queue its own (lab.sh
#               shape --queue 100), no tbf
# and per case:
#   udp  iperf3 UDP a -> b at DLB_UDP_MBIT for DLB_SECONDS (1400-byte payloads)
#   tcp  iperf3 TCP BBR a -> b for DLB_SECONDS
# Per run one line: what iperf3's receiver got, what the line delivered
# (Mbit/s of Ethernet frames into the tbf towards b while iperf3 ran, which
# includes its start), the delay line's counters
# (fwd is a -> b: rx read, tx sent, rxdrop dropped by the kernel before the
# line read them, txdrop refused by the tbf, overflow its own queue full),
# the frames the tbf dropped, the
# line's CPU seconds (user and system: the system time includes the receiving
# host's stack, which runs in the softirq of the line's send) and the load
# average. As root, about a minute per round.
#
#   sudo Tests/lab/delayline-bench.sh
#
# Environment: DLB_RATE (1000), DLB_DELAY (10), DLB_SECONDS (10), DLB_ROUNDS
# (2), DLB_UDP_MBIT (950), DLB_CASES ("python:tbf c:tbf c:line"), DLB_TESTS
# ("udp tcp"),
# DLB_TCP_WMEM (33554432: the TCP sender's tcp_wmem maximum in namespace a;
# with the link's offloads off every segment is its own buffer, and Linux's
# default 4 MiB holds too little of a 1 Gbit/s, 20 ms path for one flow),
# DLB_IPERF_FIFO (1: both iperf3 ends run under SCHED_FIFO, chrt -f 5, so
# that on a loaded machine the test measures the line and not how much CPU
# iperf3 got; 0: normal priority).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
RATE=${DLB_RATE:-1000} DELAY=${DLB_DELAY:-10} SECONDS_=${DLB_SECONDS:-10} ROUNDS=${DLB_ROUNDS:-2}
UDP_MBIT=${DLB_UDP_MBIT:-950} CASES=${DLB_CASES:-python:tbf c:tbf c:line} TESTS=${DLB_TESTS:-udp tcp}
WMEM=${DLB_TCP_WMEM:-33554432}
PRIO=()
[[ ${DLB_IPERF_FIFO:-1} == 0 ]] || PRIO=(chrt -f 5)
PY=$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || command -v python3)
export LAB_ID=${LAB_ID:-db$$} LAB_QUIET=1

[[ $(id -u) -eq 0 ]] || { echo "delayline-bench: must run as root" >&2; exit 2; }
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
trap 'bash "$LAB" down >/dev/null 2>&1 || true' EXIT
eval "$(bash "$LAB" up lan)"
RUN=${LAB_ROOT:-/tmp/tern-lab}/$LAB_ID
BOX=$LAB_ID-xa-eth0
bash "$LAB" exec a sysctl -qw "net.ipv4.tcp_wmem=4096 16384 $WMEM"
for h in a b; do bash "$LAB" exec "$h" sysctl -qw net.ipv4.tcp_congestion_control=bbr; done

shape() {                      # LINE tbf|line
  if [[ $2 == line ]]; then
    for dev in near far; do ip netns exec "$BOX" tc qdisc del dev "$dev" root 2>/dev/null || true; done
    LAB_DELAYLINE=$1 bash "$LAB" shape a eth0 --delay "$DELAY" --delay-in "$DELAY" \
      --rate "$RATE" --rate-in "$RATE" --queue 100 >/dev/null
    return 0
  fi
  LAB_DELAYLINE=$1 bash "$LAB" shape a eth0 --delay "$DELAY" --delay-in "$DELAY" >/dev/null
  local limit=$((RATE * 1000000 / 8 / 10)) burst=$((RATE * 1000000 / 8 / 1000))
  [[ $burst -ge 3028 ]] || burst=3028
  for dev in near far; do
    ip netns exec "$BOX" tc qdisc replace dev "$dev" root tbf rate "${RATE}mbit" burst "$burst" limit "$limit"
  done
}

# Bytes sent towards b by the box's far veth (frames with their Ethernet
# headers): what the line delivered.
tbf_sent() { ip netns exec "$BOX" cat /sys/class/net/far/statistics/tx_bytes; }

# UDP datagrams b's kernel dropped because a socket's buffer was full.
rcvbuf_errors() { bash "$LAB" exec b nstat -az UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" {print $2}'; }

run() {                        # LINE:BOTTLENECK TEST
  local line=${1%:*} where=${1#*:}
  shape "$line" "$where"
  local pid out got u0 s0 u1 s1 w0 w1 b0 b1 r0 counters tbfdrop
  pid=$(cat "$RUN/delayline-a-eth0.pid")
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  b0=$(tbf_sent)
  r0=$(rcvbuf_errors)
  bash "$LAB" exec b "${PRIO[@]}" iperf3 -s -1 -B "$B_IP" >/dev/null 2>&1 &
  local server=$!
  sleep 0.5
  w0=$(date +%s.%N)
  if [[ $2 == udp ]]; then
    out=$(bash "$LAB" exec a "${PRIO[@]}" iperf3 -c "$B_IP" -u -b "${UDP_MBIT}M" -l 1400 -t "$SECONDS_" -J || true)
    got=$("$PY" -c 'import json,sys; r=json.load(sys.stdin)["end"]["sum"]; print("received %.1f Mbit/s, iperf3 lost %d of %d" % ((r["packets"]-r["lost_packets"])*1400*8/r["seconds"]/1e6, r["lost_packets"], r["packets"]))' <<<"$out" 2>&1 || echo "iperf3 failed")
  else
    out=$(bash "$LAB" exec a "${PRIO[@]}" iperf3 -c "$B_IP" -t "$SECONDS_" -C bbr -J || true)
    got=$("$PY" -c 'import json,sys; r=json.load(sys.stdin)["end"]; print("received %.1f Mbit/s, retransmits %s" % (r["sum_received"]["bits_per_second"]/1e6, r["sum_sent"]["retransmits"]))' <<<"$out" 2>&1 || echo "iperf3 failed")
  fi
  w1=$(date +%s.%N)
  wait "$server" 2>/dev/null || true
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  b1=$(tbf_sent)
  [[ $2 != udp ]] || got="$got (b's socket buffer dropped $(($(rcvbuf_errors) - r0)))"
  kill -USR1 "$pid"; sleep 0.3
  counters=$(tail -1 "$RUN/delayline-a-eth0.log" | sed 's/ | rev:.*//; s/ ect=.*//')
  tbfdrop=$(ip netns exec "$BOX" tc -s qdisc show dev far | sed -n 's/.*(dropped \([0-9]*\),.*/\1/p' | head -1)
  tbfdrop=${tbfdrop:--}
  printf '%-10s %-3s | %s | line out %s Mbit/s | %s tbf-dropped=%s | line CPU user %s s, sys %s s in %s s | load %s\n' "$1" "$2" "$got" \
    "$("$PY" -c "print(round(($b1-$b0)*8/1e6/($w1-$w0),1))")" "$counters" "$tbfdrop" "$("$PY" -c "print(round(($u1-$u0)/100,2))")" "$("$PY" -c "print(round(($s1-$s0)/100,2))")" \
    "$("$PY" -c "print(round($w1-$w0,1))")" "$(cut -d' ' -f1 /proc/loadavg)"
}

echo "rate ${RATE} Mbit/s, ${DELAY} ms each way; UDP at ${UDP_MBIT} Mbit/s; ${SECONDS_} s a run; $(nproc) CPUs; iperf3 ${PRIO[*]:-at normal priority}"
for round in $(seq 1 "$ROUNDS"); do
  for t in $TESTS; do
    for c in $CASES; do run "$c" "$t"; done
  done
done
