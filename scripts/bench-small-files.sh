#!/usr/bin/env bash
# Many-small-files benchmark (prints numbers, not a test): one tree of
# BENCH_SMALL_FILES files of 1-4 KiB (random sizes and bytes, 100 files per
# directory), built once, moved from namespace a to namespace b of the
# network lab's `lan` topology (as scripts/bench-transfer.sh does) three ways:
#   dir:      `tern send TREE` / `tern receive --yes -o OUT`
#   tar:      `tar c TREE | tern send -` / `tern receive -o - | tar x -C OUT`
#   wormhole: `wormhole send TREE` (it zips the tree) / `wormhole receive`
# with `tern relay`, wormhole's mailbox server and its transit relay in r.
# Runs alternate (dir, tar, wormhole, dir, ...); every received tree is
# compared with the source (names and contents). Every tern and wormhole
# process runs as an unprivileged user (setpriv, uid BENCH_UID) that owns the
# source and output folders, and tar runs as that user too.
#
# No process runs with --json (one event line per file would cost tern, not
# tar or wormhole); the senders' readiness is the code they print.
#
# Two times per run, in seconds: `total`, from the sender's start (tar c,
# the tree scan, wormhole's zip included) to the end of the last process,
# and `receiver`, from the receiver's start (once the sender has shown its
# code) to its end (tar x included). One JSON line per run on stdout, then a
# comparison line: medians per way, and the ratios the goal is judged on
# (on `total`): dir/tar < 2, and dir/wormhole < 1.
#
#   sudo scripts/bench-small-files.sh
#
# Environment:
#   BENCH_SMALL_FILES  files in the tree (default 10000)
#   BENCH_SMALL_RUNS   runs per way (default 3)
#   BENCH_SMALL_WAYS   any of "dir tar wormhole" (default all three)
#   BENCH_TIMEOUT      seconds a run may take (default 300)
#   BENCH_UID          the unprivileged user (default 65534, nobody)
#   TERN               tern binary (default .build/release/tern, built with
#                      `swift build -c release --product tern` when missing)
#   WORMHOLE_VENV      magic-wormhole venv (default /opt/tern-bench/wormhole-venv,
#                      made on first use, as bench-transfer.sh does)
#   BENCH_KEEP_LOGS=1  keep the work dir (logs of every process)
# Nothing leaves the lab: every address used is in 198.18.0.0/24.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB=$ROOT/Tests/lab/lab.sh
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

FILES=${BENCH_SMALL_FILES:-10000}
RUNS=${BENCH_SMALL_RUNS:-3}
WAYS=${BENCH_SMALL_WAYS:-dir tar wormhole}
TIMEOUT=${BENCH_TIMEOUT:-300}
BENCH_UID=${BENCH_UID:-65534}
VENV=${WORMHOLE_VENV:-/opt/tern-bench/wormhole-venv}
TERN=${TERN:-$ROOT/.build/release/tern}
TERN_CODE=7-aardvark-adroitness
WORMHOLE_CODE=7-guitarist-revenge
TERN_PORT=4747 TERN_STUN_PORT=3478 MAILBOX_PORT=4000 TRANSIT_PORT=4001

say() { echo "bench-small: $*" >&2; }
die() { echo "bench-small: $*" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run with sudo"
[[ $FILES =~ ^[0-9]+$ && $FILES -gt 0 ]] || die "BENCH_SMALL_FILES must be a positive integer"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "BENCH_SMALL_RUNS must be a positive integer"
for w in $WAYS; do [[ $w == dir || $w == tar || $w == wormhole ]] || die "unknown way '$w' in BENCH_SMALL_WAYS"; done
want() { [[ " $WAYS " == *" $1 "* ]]; }
wants_tern() { want dir || want tar; }

if wants_tern && [[ ! -x $TERN ]]; then
  [[ $TERN == "$ROOT/.build/release/tern" ]] || die "TERN=$TERN is not an executable"
  say "no $TERN; building it (release)"
  (cd "$ROOT" && swift build -c release --product tern >&2)
  [[ -x $TERN ]] || die "the build produced no $TERN"
fi
if want wormhole && ! [[ -x $VENV/bin/wormhole && -x $VENV/bin/twist ]]; then
  say "installing magic-wormhole, its mailbox server and transit relay into $VENV"
  "$PY" -c 'import ensurepip, venv' 2>/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    magic-wormhole magic-wormhole-mailbox-server magic-wormhole-transit-relay >&2
fi

# --- work dir, tree, lab, cleanup -----------------------------------------

free=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ' || echo 0)
if [[ ${free:-0} -gt $((FILES * 40 * 1024 + 256 * 1024 * 1024)) ]]; then base=/dev/shm; else base=/tmp; fi
WORK=$(mktemp -d "$base/tern-bench-small.XXXXXX")
LAB_ID=ts$$
export LAB_ID LAB_QUIET=1
LAB_UP=0
STATUS=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ $LAB_UP == 0 ]] || bash "$LAB" down || true
  if [[ ${BENCH_KEEP_LOGS:-} == 1 ]]; then
    rm -rf "$WORK/a/tree" "$WORK/out"
    say "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

AS_USER=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --clear-groups --)
chmod 755 "$WORK"
mkdir -p "$WORK"/{a,r,out,logs}
chown "$BENCH_UID:$BENCH_UID" "$WORK"/{a,r,out}
if wants_tern; then
  # A copy the unprivileged user can reach (the build folder may not be).
  install -m 755 "$TERN" "$WORK/tern"
  TERN=$WORK/tern
fi

say "writing $FILES files of 1-4 KiB to $WORK/a/tree"
"${AS_USER[@]}" "$PY" - "$WORK/a/tree" "$FILES" <<'EOF'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261203)
for i in range(count):
    folder = os.path.join(root, "d%04d" % (i // 100))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "f%06d.dat" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 4096)))
EOF
# Names and contents of a tree, as one digest (the check of every copy).
tree_digest() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64); }
SRC_DIGEST=$(tree_digest "$WORK/a/tree")   # also leaves the tree in the page cache
SRC_BYTES=$(find "$WORK/a/tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

LAB_UP=1
labenv=$(bash "$LAB" up lan) || die "lab.sh up lan failed"
eval "$labenv"
[[ $A_IP == 198.18.0.* && $B_IP == 198.18.0.* && $R_IP == 198.18.0.* ]] || die "unexpected lab addresses"

inr() { ip netns exec "$R_NS" "$@"; }
wait_listen() {                # PORT WHAT PID
  for _ in $(seq 1 200); do
    inr ss -Hlnt "sport = :$1" | grep -q . && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  die "$2 did not start listening on $R_IP:$1 (log in $WORK/logs)"
}
if wants_tern; then
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$TERN" relay --listen "$R_IP:$TERN_PORT" \
    --stun-listen "$R_IP:$TERN_STUN_PORT") >"$WORK/logs/tern-relay.log" 2>&1 &
  wait_listen "$TERN_PORT" "tern relay" $!
fi
if want wormhole; then
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$VENV/bin/twist" --log-format=text wormhole-mailbox \
    --port "tcp:$MAILBOX_PORT:interface=$R_IP" --channel-db "$WORK/r/mailbox.sqlite") \
    >"$WORK/logs/wormhole-mailbox.log" 2>&1 &
  wait_listen "$MAILBOX_PORT" "wormhole mailbox server" $!
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$VENV/bin/twist" --log-format=text transitrelay \
    --port "tcp:$TRANSIT_PORT:interface=$R_IP") >"$WORK/logs/wormhole-transit.log" 2>&1 &
  wait_listen "$TRANSIT_PORT" "wormhole transit relay" $!
fi

load=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' && say "warning: load average $load: other work is running; the numbers will be noisy"
tern_version=null wormhole_version=null
wants_tern && tern_version="\"$("$TERN" --version 2>/dev/null | head -1)\""
want wormhole && wormhole_version="\"$("$VENV/bin/wormhole" --version 2>&1 | awk '{print $NF}')\""
echo "{\"bench\":\"small-files\",\"files\":$FILES,\"bytes\":$SRC_BYTES,\"runs\":$RUNS,\"topology\":\"lan\",\"loadavg\":$load,\"cpus\":$(nproc),\"file_dir\":\"$base\",\"tern\":$tern_version,\"wormhole\":$wormhole_version}"

now() { date +%s.%N; }
RESULTS=$WORK/results.jsonl
: >"$RESULTS"

# One run of one way: starts the sender (its output to a log), waits for its
# code, runs the receiver, waits for the sender, checks the copy.
run_way() {                    # WAY RUN
  local way=$1 run=$2 logs=$WORK/logs/$1-$2 ready sender receiver_rc=0 sender_rc=0
  local t0 t1 t2 t3 deadline ok=false
  mkdir -p "$logs"
  rm -rf "$WORK/out"; mkdir -p "$WORK/out"; chown "$BENCH_UID:$BENCH_UID" "$WORK/out"
  local tern_a=(ip netns exec "$A_NS" "${AS_USER[@]}" "$TERN")
  local tern_b=(ip netns exec "$B_NS" "${AS_USER[@]}" "$TERN")
  local wh=("$VENV/bin/wormhole" --relay-url "ws://$R_IP:$MAILBOX_PORT/v1" --transit-helper "tcp:$R_IP:$TRANSIT_PORT")
  t0=$(now)
  case $way in
    dir)
      (cd "$WORK/a" && exec "${tern_a[@]}" send --relay "ws://$R_IP:$TERN_PORT" --code "$TERN_CODE" tree) \
        >"$logs/sender.out" 2>"$logs/sender.err" &
      ready='^Code: ' ;;
    tar)
      (cd "$WORK/a" && "${AS_USER[@]}" tar c tree | "${tern_a[@]}" send --relay "ws://$R_IP:$TERN_PORT" --code "$TERN_CODE" -) \
        >"$logs/sender.out" 2>"$logs/sender.err" &
      ready='^Code: ' ;;
    wormhole)
      (cd "$WORK/a" && exec ip netns exec "$A_NS" "${AS_USER[@]}" "${wh[@]}" send --code "$WORMHOLE_CODE" tree) \
        >"$logs/sender.out" 2>"$logs/sender.err" &
      ready='Wormhole code is' ;;
  esac
  sender=$!
  deadline=$(( $(date +%s) + TIMEOUT ))
  until grep -q "$ready" "$logs/sender.out" "$logs/sender.err" 2>/dev/null; do
    if ! kill -0 "$sender" 2>/dev/null || (( $(date +%s) > deadline )); then
      say "$way run $run: the sender never showed its code (logs in $logs)"; break
    fi
    sleep 0.005
  done
  t1=$(now)
  case $way in
    dir)
      timeout "$TIMEOUT" "${tern_b[@]}" receive --relay "ws://$R_IP:$TERN_PORT" --yes -o "$WORK/out" "$TERN_CODE" \
        >"$logs/receiver.out" 2>"$logs/receiver.err" || receiver_rc=$? ;;
    tar)
      (set -o pipefail; timeout "$TIMEOUT" "${tern_b[@]}" receive --relay "ws://$R_IP:$TERN_PORT" --yes -o - "$TERN_CODE" \
        2>"$logs/receiver.err" | "${AS_USER[@]}" tar x -C "$WORK/out") >"$logs/receiver.out" 2>&1 || receiver_rc=$? ;;
    wormhole)
      timeout "$TIMEOUT" ip netns exec "$B_NS" "${AS_USER[@]}" "${wh[@]}" receive --accept-file -o "$WORK/out/tree" "$WORMHOLE_CODE" \
        >"$logs/receiver.out" 2>"$logs/receiver.err" || receiver_rc=$? ;;
  esac
  t2=$(now)
  # The sender ends at about the same time; a stuck one is stopped.
  for _ in $(seq 1 1000); do kill -0 "$sender" 2>/dev/null || break; sleep 0.01; done
  kill "$sender" 2>/dev/null || true
  wait "$sender" || sender_rc=$?
  t3=$(now)
  if [[ $receiver_rc == 0 && $sender_rc == 0 && -d $WORK/out/tree && $(tree_digest "$WORK/out/tree") == "$SRC_DIGEST" ]]; then
    ok=true
  else
    STATUS=1
    say "$way run $run FAILED: receiver exit $receiver_rc, sender exit $sender_rc, or a copy that differs (logs in $logs)"
  fi
  # The sender may end a moment before the receiver: the later end counts.
  awk -v way="$way" -v run="$run" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v ok="$ok" 'BEGIN {
    last = t3 > t2 ? t3 : t2
    printf "{\"way\":\"%s\",\"run\":%d,\"ok\":%s,\"total_s\":%.3f,\"receiver_s\":%.3f,\"code_after_s\":%.3f}\n",
      way, run, ok, last - t0, t2 - t1, t1 - t0 }'
}

for run in $(seq 1 "$RUNS"); do
  for way in $WAYS; do
    say "run $run: $way, $FILES files"
    run_way "$way" "$run" | tee -a "$RESULTS"
  done
done

"$PY" - "$RESULTS" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def median(way, key):
    values = [r[key] for r in runs if r["way"] == way and r["ok"]]
    return statistics.median(values) if values else None
out = {"bench": "small-files-compare"}
for way in ("dir", "tar", "wormhole"):
    for key in ("total_s", "receiver_s"):
        value = median(way, key)
        if value is not None:
            out[f"{way}_{key}"] = round(value, 3)
def ratio(a, b, key):
    x, y = median(a, key), median(b, key)
    return round(x / y, 2) if x and y else None
out["dir_over_tar"] = ratio("dir", "tar", "total_s")
out["dir_over_wormhole"] = ratio("dir", "wormhole", "total_s")
out["dir_over_tar_receiver"] = ratio("dir", "tar", "receiver_s")
out["dir_over_wormhole_receiver"] = ratio("dir", "wormhole", "receiver_s")
goal = []
if out["dir_over_tar"] is not None:
    goal.append(("dir < 2x tar", out["dir_over_tar"] < 2))
if out["dir_over_wormhole"] is not None:
    goal.append(("dir faster than wormhole", out["dir_over_wormhole"] < 1))
out["goal"] = {name: met for name, met in goal}
print(json.dumps(out))
EOF
if [[ $STATUS != 0 ]]; then
  say "FAILED: a run did not deliver an identical tree, or a process exited non-zero (its line has \"ok\": false)"
fi
exit "$STATUS"
