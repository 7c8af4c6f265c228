#!/usr/bin/env bash
# Idle cost of a federation on this machine: N real `web4fed run` processes on loopback, each
# told only of nodes 0 and 1 (as operators would all be given the same two seeds), no thoughts posted; after SETTLE
# seconds (default 70: presence events start a minute after registration, and belong in the
# figure), the CPU the whole federation
# uses over SECS seconds (utime + stime from /proc/PID/stat), in cores and per node.
#   bash scripts/idle-cpu.sh target/release/web4fed 20 30
# HOLD=1 leaves the nodes running (and prints their directory) for a closer look.
# Ports 31000+ (p2p) and 32000+ (API) must be free.
set -euo pipefail
bin=$1; n=$2; secs=$3
d=$(mktemp -d)
# Every node a founder (keys first, then the genesis naming them): every member votes, the
# case in which the validator committee (max_validators) must bound the agreement's cost.
# GENESIS_ARGS adds genesis flags, e.g. "--set max_validators=8"; RUN_ARGS adds `run` flags.
founders=()
for i in $(seq 0 $((n-1))); do
  founders+=(--founder "$("$bin" keygen --dir "$d/n$i")")
done
"$bin" genesis --pow-bits 8 --network-name idle --out "$d/g.toml" "${founders[@]}" ${GENESIS_ARGS:-} >/dev/null
pids=()
for i in $(seq 0 $((n-1))); do
  "$bin" init --dir "$d/n$i" --name "n$i" --genesis "$d/g.toml" >/dev/null 2>&1
done
for i in $(seq 0 $((n-1))); do
  peer=""; [ $i -gt 0 ] && peer="--peer /ip4/127.0.0.1/tcp/31000"
  [ $i -gt 1 ] && peer="$peer --peer /ip4/127.0.0.1/tcp/31001"
  "$bin" run --dir "$d/n$i" --listen /ip4/127.0.0.1/tcp/$((31000+i)) --api 127.0.0.1:$((32000+i)) $peer ${RUN_ARGS:-} > "$d/n$i.log" 2>&1 &
  pids+=($!)
done
sleep "${SETTLE:-70}"
ticks() { local t=0; for p in "${pids[@]}"; do read -r -a f < /proc/$p/stat; t=$((t + f[13] + f[14])); done; echo $t; }
a=$(ticks); sleep "$secs"; b=$(ticks)
hz=$(getconf CLK_TCK)
echo "nodes=$n cores=$(echo "scale=3; ($b-$a)/$hz/$secs" | bc) per_node_ms_per_s=$(echo "scale=1; ($b-$a)*1000/$hz/$secs/$n" | bc)"
if [ -n "${HOLD:-}" ]; then echo "holding: $d (kill ${pids[*]})"; exit 0; fi
kill "${pids[@]}"; wait 2>/dev/null || true
rm -rf "$d"
