#!/usr/bin/env bash
# make bench: the data path's throughput on this machine (a benchmark, not a
# test). Release build; prints one JSON line per measurement.
#   1. two SCTP associations in one process, packets through the codec;
#   2. two tern processes over the real stack: pairing through a local
#      `tern relay`, ICE on UDP loopback, DTLS, SCTP, one data channel,
#      BENCH_BYTES (default 1 GiB) in 256 KiB messages.
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${BENCH_BYTES:-1073741824}
# One product per invocation: with two --product flags SwiftPM builds only the last.
swift build -c release --product tern >/dev/null
swift build -c release --product tern-bench >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/tern-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# Users are not root: as root, the processes run as nobody, from a copy of
# the binaries that account can reach.
as_user=()
if [[ $(id -u) -eq 0 ]]; then
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  chmod 755 "$work"
  install -m 755 "$bin/tern" "$bin/tern-bench" "$work/"
  bin=$work
fi

echo "== SCTP associations in one process (codec included, no DTLS, no sockets)"
"${as_user[@]}" "$bin/tern-bench" sctp "$bytes"

echo "== two processes: UDP on loopback, DTLS, SCTP, one data channel"
"${as_user[@]}" "$bin/tern" relay --listen 127.0.0.1:0 --stun-listen 127.0.0.1:0 2>"$work/relay.log" &
for _ in $(seq 1 100); do grep -q "rendezvous_port=" "$work/relay.log" && break; sleep 0.05; done
port=$(sed -n 's/.*rendezvous_port=\([0-9]*\).*/\1/p' "$work/relay.log" | head -1)
code="77-aardvark-adroitness"
"${as_user[@]}" "$bin/tern-bench" receive "ws://127.0.0.1:$port" "$code" "$bytes" >"$work/receive.json" &
receiver=$!
"${as_user[@]}" "$bin/tern-bench" send "ws://127.0.0.1:$port" "$code" "$bytes"
wait "$receiver"
cat "$work/receive.json"
