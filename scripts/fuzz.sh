#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds (default 60) and prints how many inputs each ran.
# Installs what it needs (the nightly toolchain, cargo-fuzz). Exits non-zero if a target finds
# a crash; the input that did it is kept under fuzz/artifacts/TARGET/.
# Usage: scripts/fuzz.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    log="$(mktemp)"
    if ! cargo +nightly fuzz run "$t" -- -max_total_time="$secs" >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz target $t FAILED"
        exit 1
    fi
    echo "fuzz $t: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1)"
done
