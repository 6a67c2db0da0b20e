#!/usr/bin/env bash
# The main job on one machine: a local relay, a real `tern send` and a real
# `tern receive` in two processes; then LAN mode: the same two processes with
# no relay process at all, the sender announcing its own rendezvous. Run by
# `make demo`.
set -euo pipefail
tern=$(realpath "${1:-.build/debug/tern}")
work=$(mktemp -d /tmp/tern-demo.XXXXXX)
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a relay on loopback"
"$tern" relay --listen 127.0.0.1:0 --stun-listen 127.0.0.1:0 2>"$work/relay.log" &
relay_pid=$!
for _ in $(seq 100); do grep -q "relay listening" "$work/relay.log" 2>/dev/null && break; sleep 0.05; done
port=$(grep -o 'rendezvous_port=[0-9]*' "$work/relay.log" | cut -d= -f2)
[ -n "$port" ] || { echo "the relay did not start:"; cat "$work/relay.log"; exit 1; }
export TERN_RELAY="ws://127.0.0.1:$port"
echo "   relay at $TERN_RELAY"

mkdir -p "$work/outbox/photos"
echo "hello from the sending machine" > "$work/outbox/greeting.txt"
head -c 300000 /dev/urandom > "$work/outbox/photos/beach.jpg"
head -c 120000 /dev/urandom > "$work/outbox/photos/sunset.jpg"

echo
echo "== alice\$ tern send greeting.txt photos"
(cd "$work/outbox" && exec "$tern" send greeting.txt photos) 2>"$work/alice.log" &
sender_pid=$!
code=""
for _ in $(seq 200); do
  code=$(sed -n 's/^Code: //p' "$work/alice.log" | head -1)
  [ -n "$code" ] && break
  sleep 0.05
done
[ -n "$code" ] || { echo "the sender printed no code:"; cat "$work/alice.log"; exit 1; }
sed 's/^/   alice| /' "$work/alice.log"

echo
echo "== bob\$ tern receive $code --yes -o inbox"
(cd "$work" && "$tern" receive "$code" --yes -o inbox 2>&1 | sed 's/^/   bob  | /')
wait "$sender_pid"
echo
echo "== alice, after bob answered:"
tail -n +3 "$work/alice.log" | sed 's/^/   alice| /'
echo
echo "== the relay's log"
sed 's/^/   relay| /' "$work/relay.log"
echo
echo "== what arrived"
(cd "$work/inbox" && find . -type f | sort | sed 's/^/   bob  | /')
diff -r "$work/outbox" "$work/inbox" >/dev/null || { echo "the received files differ from the sent ones"; exit 1; }
echo
echo "Relay mode done: the two sides paired with CPace through the relay, exchanged the"
echo "sealed offer and answer, found a UDP path to each other with ICE, and moved"
echo "the files over DTLS, SCTP and a data channel, every chunk and file verified:"
echo "bob's inbox is identical to alice's outbox."

kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true
relay_pid=""
unset TERN_RELAY

echo
echo "== LAN mode: no relay process, nothing configured"
# As root, in a network namespace of its own with only loopback, so that the
# demo's announcements stay on this machine; otherwise on the real network,
# as a user would run it.
lan_demo() {
  tern=$1 work=$2
  if [ "${3:-}" = isolated ]; then ip link set lo up; fi
  export XDG_CONFIG_HOME="$work/no-config"
  mkdir -p "$work/inbox-lan"
  echo
  echo "== alice\$ tern send greeting.txt photos        (no --relay, no TERN_RELAY)"
  (cd "$work/outbox" && exec "$tern" send --no-qr greeting.txt photos) 2>"$work/alice-lan.log" &
  sender_pid=$!
  code=""
  for _ in $(seq 200); do
    code=$(sed -n 's/^Code: //p' "$work/alice-lan.log" | head -1)
    [ -n "$code" ] && break
    sleep 0.05
  done
  [ -n "$code" ] || { echo "the sender printed no code:"; cat "$work/alice-lan.log"; return 1; }
  sed 's/^/   alice| /' "$work/alice-lan.log"
  echo
  echo "== bob\$ tern receive $code --yes -o inbox-lan"
  (cd "$work" && "$tern" receive "$code" --yes -o inbox-lan 2>&1 | sed 's/^/   bob  | /')
  wait "$sender_pid"
  echo
  echo "== alice, after bob answered:"
  tail -n +5 "$work/alice-lan.log" | sed 's/^/   alice| /'
  diff -r "$work/outbox" "$work/inbox-lan" >/dev/null || { echo "the received files differ from the sent ones"; return 1; }
}
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
  export -f lan_demo
  unshare --net bash -c 'lan_demo "$0" "$1" isolated' "$tern" "$work"
else
  lan_demo "$tern" "$work"
fi
echo
echo "LAN mode done: alice's tern ran the rendezvous itself and announced it on the"
echo "local network (nameplate and port only); bob's tern found it by multicast,"
echo "paired with the same CPace and moved the files the same way."
