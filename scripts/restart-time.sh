#!/usr/bin/env bash
# Restart time of a stopped node: starts `web4fed run` on DIR alone (no peers), and reports
# the wall time from process start to its API answering /v1/status, the events in its log,
# the events read again at start, the snapshot it started from and whether its root is the
# one recorded when it last stopped. The node is stopped again afterwards (SIGTERM).
#   bash scripts/restart-time.sh target/release/web4fed DIR          # from its newest snapshot
#   FULL=1 bash scripts/restart-time.sh target/release/web4fed DIR   # snapshots set aside: the whole log
# Logs from a `web4fed bench --sustain-secs S --dir D` run make good subjects (D/thor).
# Ports 33000 (p2p) and 33001 (API) must be free.
set -euo pipefail
bin=$1; dir=$2
aside=""
if [ "${FULL:-0}" = 1 ] && [ -d "$dir/snapshots" ]; then
  aside="$dir/snapshots.aside"
  mv "$dir/snapshots" "$aside"
fi
restore() { [ -n "$aside" ] && mv "$aside" "$dir/snapshots"; true; }
trap restore EXIT
recorded=$(sqlite3 "$dir/events.db" "SELECT hex(value) FROM meta WHERE key = 'root'" 2>/dev/null | tr 'A-F' 'a-f' || true)
rows=$(sqlite3 "$dir/events.db" "SELECT COUNT(*) FROM events" 2>/dev/null || echo "?")
token=$(cat "$dir/api.token")
log=$(mktemp)
start=$(date +%s.%N)
"$bin" run --dir "$dir" --listen /ip4/127.0.0.1/tcp/33000 --api 127.0.0.1:33001 --snapshots-kept 3 > "$log" 2>&1 &
pid=$!
until curl -sf -H "Authorization: Bearer $token" http://127.0.0.1:33001/v1/status > /dev/null 2>&1; do
  if ! kill -0 $pid 2>/dev/null; then cat "$log"; exit 1; fi
  sleep 0.02
done
end=$(date +%s.%N)
kill -TERM $pid; wait $pid || true
line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep "state rebuilt" | tail -1)
# The rebuilt root (the fold of the log, before the node adds anything of its own: a
# presence event soon after start changes the live root).
root=$(echo "$line" | grep -o 'root=[0-9a-f]*' | cut -d= -f2)
echo "log rows:           $rows"
echo "live API after:     $(echo "$end - $start" | bc) s"
echo "rebuild:            ${line#*state rebuilt }"
if [ -n "$recorded" ]; then
  [ "$recorded" = "$root" ] && echo "root:               $root (the one recorded at the last stop)" \
                            || echo "root:               $root DIFFERS from the recorded $recorded"
fi
rm -f "$log"
