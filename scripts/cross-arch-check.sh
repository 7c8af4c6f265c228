#!/usr/bin/env bash
# Cross-architecture determinism check (principle 4): the same large event log folded by the
# x86-64 binary and by the aarch64 binary (under qemu-user) must give the same state root.
# Installs what it needs (rustup target, Debian's cross gcc and qemu-user). Exits non-zero if
# any root differs. Usage: scripts/cross-arch-check.sh [seed] [thoughts]
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${1:-1}"
thoughts="${2:-10000}"
if ! rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi
cargo build --release --locked -p web4fed
# jemalloc's page size is fixed when it is built: 64 KiB works on kernels with 4, 16 or 64 KiB
# pages (a cross build cannot ask the target's kernel).
JEMALLOC_SYS_WITH_LG_PAGE=16 cargo build --release --locked --target aarch64-unknown-linux-gnu -p web4fed
x86=target/release/web4fed
arm=target/aarch64-unknown-linux-gnu/release/web4fed
log="$(mktemp -d)/rich.log"
"$x86" gen-log --out "$log" --seed "$seed" --thoughts "$thoughts"
echo "== x86-64 (native)"
"$x86" fold --log "$log" --reverse | tee "$log.x86"
echo "== aarch64 (qemu-user)"
start=$(date +%s%N)
qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm" fold --log "$log" --reverse | tee "$log.arm"
echo "aarch64 run took $(( ($(date +%s%N) - start) / 1000000 )) ms under qemu"
a=$(grep '^root' "$log.x86" | awk '{print $2}')
b=$(grep '^root' "$log.arm" | awk '{print $2}')
if [ "$a" != "$b" ]; then
    echo "ROOTS DIFFER: x86-64 $a, aarch64 $b"
    exit 1
fi
echo "same root on x86-64 and aarch64: $a"
# The mixed federation: Legion native, Thor and Sprout aarch64 under qemu, in namespaces.
WEB4FED_ARM_BIN="$PWD/$arm" cargo nextest run --locked -p web4fed --test hosts \
    --run-ignored ignored-only --no-capture mixed_architectures_agree
