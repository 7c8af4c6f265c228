#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: the loopback and network-namespace runs of `web4fed bench`
# (the namespace run needs root), the 10-minute sustained run, and a perf profile of a
# receiving node during the throughput run, and the scale run (10, 30 and 100 processes).
# About 25 minutes on a 2-core machine.
#   bash scripts/benchmarks.sh            # everything
#   SUSTAIN=0 bash scripts/benchmarks.sh  # without the 10-minute run
#   SCALE=0 bash scripts/benchmarks.sh    # without the 10/30/100-process scale run (~8 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p web4fed
bin=target/release/web4fed
out=$(mktemp -d)
"$bin" bench --finality-secs 0 --out "$out/loopback.md"
"$bin" bench --only finality --samples 50 --finality-secs 120 --out "$out/finality.md"
{ grep -E '^Machine' "$out/finality.md"; echo; grep -E '^\| figure|^\|---|^\| finality' "$out/finality.md"; } > "$out/finality-row.md"
if [ "$(id -u)" = 0 ]; then
    "$bin" bench --netns --finality-secs 0 --out "$out/netns.md"
else
    echo "(not root: the network-namespace run is skipped)" > "$out/netns.md"
fi
if [ "${SUSTAIN:-1}" != 0 ]; then
    "$bin" bench --finality-secs 0 --samples 50 --sustain-secs 600 --sustain-rate 2000 --out "$out/sustain.md"
    grep -E '^\| figure|^\|---|^\| sustained for' "$out/sustain.md" > "$out/sustain-row.md"
    { echo; grep -E '^Sustained run' "$out/sustain.md" || true; } >> "$out/sustain-row.md"
fi
if [ "${SCALE:-1}" != 0 ]; then
    "$bin" bench --nodes 10 --nodes 30 --nodes 100 --out "$out/scale.md"
fi
if command -v perf >/dev/null 2>&1; then
    "$bin" bench --finality-secs 0 --samples 20 --perf "$out/profile.txt" --out "$out/perf-run.md"
    grep -E '^ +[0-9.]+%' "$out/profile.txt" | head -25 | cut -c1-160 > "$out/profile-top.txt"
fi
{
    cat docs/benchmarks-intro.md
    echo
    cat "$out/loopback.md"
    echo
    cat "$out/netns.md"
    echo
    echo "## Finality latency (loopback)"
    echo
    cat "$out/finality-row.md"
    if [ -f "$out/sustain-row.md" ]; then
        echo
        echo "## Ten minutes (loopback)"
        echo
        cat "$out/sustain-row.md"
    fi
    if [ -f "$out/scale.md" ]; then
        echo
        cat "$out/scale.md"
    fi
    if [ -f "$out/profile-top.txt" ]; then
        echo
        echo "## Profile of a receiving node (Thor) during the throughput run"
        echo
        echo "\`web4fed bench --perf FILE\` (perf record -F 999 -g on Thor; perf slows the node, so"
        echo "the throughput of that run is not the one reported above). Top symbols, no children:"
        echo
        echo '```'
        cat "$out/profile-top.txt"
        echo '```'
    fi
    echo
    cat docs/benchmarks-findings.md
} > BENCHMARKS.md
echo "BENCHMARKS.md written (raw runs in $out)"
