#!/usr/bin/env bash
# Time for a new node to join a federation with a long history by state sync: starts two
# existing nodes (DIR_A, DIR_B: stopped node directories of one network, e.g. legion and thor
# after `web4fed bench --sustain-secs S --dir D`), then a fresh node with `--state-sync`
# naming both, and reports the time from the newcomer's process start to its state root
# equalling both others' (polled every 50 ms). Nodes are stopped afterwards.
#   bash scripts/join-time.sh target/release/web4fed D/legion D/thor
# With HISTORY=lazy the newcomer also fetches the history before its snapshot
# (`--history lazy`), and the script waits for that too (at most BACKFILL_WAIT seconds,
# 1800 by default) and reports its time and rate.
# Ports 34000-34005 must be free.
set -euo pipefail
bin=$1; a=$2; b=$3
new=$(mktemp -d)/newcomer
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
status() { curl -sf -H "Authorization: Bearer $(cat "$1/api.token")" "http://127.0.0.1:$2/v1/status"; }
"$bin" run --dir "$a" --listen /ip4/127.0.0.1/tcp/34000 --api 127.0.0.1:34001 > "$tmp/a.log" 2>&1 & pids+=($!)
"$bin" run --dir "$b" --listen /ip4/127.0.0.1/tcp/34002 --api 127.0.0.1:34003 --peer /ip4/127.0.0.1/tcp/34000 > "$tmp/b.log" 2>&1 & pids+=($!)
until status "$a" 34001 >/dev/null 2>&1 && status "$b" 34003 >/dev/null 2>&1; do sleep 0.2; done
events=$(status "$a" 34001 | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
"$bin" init --dir "$new" --name newcomer --genesis "$a/genesis.toml" > /dev/null 2>&1
start=$(date +%s.%N)
"$bin" run --dir "$new" --listen /ip4/127.0.0.1/tcp/34004 --api 127.0.0.1:34005 --state-sync \
  --history "${HISTORY:-never}" --peer /ip4/127.0.0.1/tcp/34000 --peer /ip4/127.0.0.1/tcp/34002 > "$tmp/new.log" 2>&1 & pids+=($!)
root() { status "$1" "$2" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state_root"])' 2>/dev/null || true; }
while true; do
  rn=$(root "$new" 34005); ra=$(root "$a" 34001); rb=$(root "$b" 34003)
  if [ -n "$rn" ] && [ "$rn" = "$ra" ] && [ "$rn" = "$rb" ]; then break; fi
  if ! kill -0 "${pids[2]}" 2>/dev/null; then cat "$tmp/new.log"; exit 1; fi
  sleep 0.05
done
end=$(date +%s.%N)
echo "history:            $events events on the existing nodes"
echo "equal root after:   $(echo "$end - $start" | bc) s (from the newcomer's process start)"
sed 's/\x1b\[[0-9;]*m//g' "$tmp/new.log" | grep -E "state sync: snapshot fetched|state rebuilt" | sed 's/^.*INFO //'
grep -E "^state sync:" "$tmp/new.log" | tail -1
if [ "${HISTORY:-never}" = lazy ]; then
  deadline=$(( $(date +%s) + ${BACKFILL_WAIT:-1800} ))
  until sed 's/\x1b\[[0-9;]*m//g' "$tmp/new.log" | grep -qE "history backfill (done|stopped)"; do
    if [ "$(date +%s)" -gt "$deadline" ]; then echo "backfill not done after ${BACKFILL_WAIT:-1800} s"; break; fi
    sleep 0.2
  done
  done_at=$(date +%s.%N)
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/new.log" | grep -E "history backfill (done|stopped)" | tail -1 | sed 's/^.*INFO //')
  stored=$(echo "$line" | grep -o 'stored=[0-9]*' | cut -d= -f2)
  secs=$(echo "$done_at - $end" | bc)
  echo "history backfill:   $secs s after the equal root ($line)"
  [ -n "$stored" ] && echo "backfill rate:      $(echo "$stored / $secs" | bc) events/s"
fi
