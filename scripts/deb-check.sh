#!/usr/bin/env bash
# Builds the web4fed .deb (cargo-deb) for x86-64, and for aarch64 when that release binary
# exists (scripts/cross-arch-check.sh builds it), then checks the x86-64 package for real:
# installs it with dpkg in a clean Debian root (debootstrap --variant=minbase, the bare
# minimum of a Debian system), checks the systemd unit with `systemd-analyze verify`, that
# the postinst made the service user and its 0700 directory, then initialises a node as that
# user and starts it the way the unit does (its ExecStart, as User=web4fed, in that root) and
# waits for its API to answer. No systemd runs here, so systemd itself does not start it.
# Needs root. Usage: bash scripts/deb-check.sh (about a minute once the release build exists).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
command -v systemd-analyze >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq systemd >/dev/null; }
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
cargo build --release --locked -p web4fed
rm -rf target/debian && mkdir -p target/debian
cargo deb -p web4fed --no-build --strip --output target/debian/
if [ -x target/aarch64-unknown-linux-gnu/release/web4fed ]; then
    cargo deb -p web4fed --no-build --strip --target aarch64-unknown-linux-gnu --output target/debian/
fi
ls -l target/debian/
# The arm64 package: its architecture, and its binary runs (under qemu-user when present).
arm=$(ls target/debian/web4fed_*_arm64.deb 2>/dev/null || true)
if [ -n "$arm" ]; then
    dpkg-deb --field "$arm" Architecture | grep -qx arm64
    x=$(mktemp -d)
    dpkg-deb -x "$arm" "$x"
    if command -v qemu-aarch64 >/dev/null 2>&1 && [ -d /usr/aarch64-linux-gnu ]; then
        qemu-aarch64 -L /usr/aarch64-linux-gnu "$x/usr/bin/web4fed" --version
    fi
    rm -rf "$x"
fi
deb=$(ls target/debian/web4fed_*_amd64.deb)
dpkg-deb --contents "$deb"

root=$(mktemp -d /tmp/web4fed-debroot.XXXXXX)
chmod 755 "$root"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
    umount "$root/proc" 2>/dev/null || true
    rm -rf "$root"
}
trap cleanup EXIT
# CI makes the base root in the background while it builds and tests (DEB_CHECK_BASE, with
# DEB_CHECK_BASE.done once complete); otherwise it is made here (about a minute).
if [ -n "${DEB_CHECK_BASE:-}" ]; then
    for _ in $(seq 1 600); do [ -e "$DEB_CHECK_BASE.done" ] && break; sleep 1; done
    [ "$(cat "$DEB_CHECK_BASE.done" 2>/dev/null)" = 0 ] || { echo "debootstrap of $DEB_CHECK_BASE failed"; exit 1; }
    cp -a "$DEB_CHECK_BASE/." "$root/"
else
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/web4fed.deb"
chroot "$root" dpkg -i /tmp/web4fed.deb
chroot "$root" getent passwd web4fed
mode=$(chroot "$root" stat -c '%a %U' /var/lib/web4fed)
[ "$mode" = "700 web4fed" ] || { echo "node directory is $mode, not 700 web4fed"; exit 1; }
unit=$(ls "$root"/lib/systemd/system/web4fed.service "$root"/usr/lib/systemd/system/web4fed.service 2>/dev/null | head -1)
[ -n "$unit" ] || { echo "no unit installed"; exit 1; }
grep -q '^ExecStart=web4fed run --dir /var/lib/web4fed' "$unit"
# Enabled at install (deb-systemd-helper, from init-system-helpers, when the root has it).
if chroot "$root" sh -c 'command -v deb-systemd-helper' >/dev/null; then
    ls "$root"/etc/systemd/system/multi-user.target.wants/web4fed.service >/dev/null
fi
# The root has no systemd of its own: verify the installed unit with this machine's systemd,
# in a private mount namespace where the packaged binary is on systemd's command path.
unshare --mount sh -euc "mount -t tmpfs tmpfs /usr/local/bin
    cp '$root/usr/bin/web4fed' /usr/local/bin/
    systemd-analyze verify '$unit'"

# Start it as the unit does: User=web4fed, its ExecStart, in the clean root.
as_service() { chroot --userspec=web4fed:web4fed "$root" env HOME=/var/lib/web4fed "$@"; }
as_service web4fed init --dir /var/lib/web4fed --name packaged --pow-bits 8 >/dev/null
api=$(( 20000 + RANDOM % 20000 ))
p2p=$(( api + 1 ))
as_service web4fed run --dir /var/lib/web4fed --listen "/ip4/127.0.0.1/tcp/$p2p" --api "127.0.0.1:$api" \
    > "$root/tmp/node.log" 2>&1 &
pid=$!
token=$(cat "$root/var/lib/web4fed/api.token" 2>/dev/null || true)
for _ in $(seq 1 100); do
    [ -z "$token" ] && token=$(cat "$root/var/lib/web4fed/api.token" 2>/dev/null || true)
    if [ -n "$token" ] && out=$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$api/v1/status" 2>/dev/null); then
        echo "$out" | grep -q '"name":"packaged"' && { echo "deb-check: installed, unit verified, service answered as user web4fed"; exit 0; }
    fi
    sleep 0.2
done
echo "the packaged node did not answer; its log:"; cat "$root/tmp/node.log"; exit 1
