#!/usr/bin/env bash
# Makes (or reuses) a Debian 11 "bullseye" root file system for the
# package test (tests/dist_debian11.rs): debootstrap --variant=minbase from
# Debian's mirror, into a cache outside the repo. The test mounts it as the
# read-only lower layer of an overlay, so it stays as built and later runs
# reuse it; a cache that is missing, half-built or of another recipe is
# rebuilt. Prints the root's path. Run as root.
set -euo pipefail

SUITE=bullseye
MIRROR=${TROLL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the recipe below changes, so old caches are rebuilt.
RECIPE="$SUITE minbase ca-certificates 1"
root=${TROLL_BULLSEYE_ROOT:-/var/cache/troll-tests/bullseye}

die() { echo "debian11-rootfs: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing; run scripts/install-deps.sh"

valid() {
  [ "$(cat "$root/.troll-rootfs" 2>/dev/null)" = "$RECIPE" ] &&
    chroot "$root" /usr/bin/apt-get --version >/dev/null 2>&1 &&
    grep -q '^VERSION_ID="11"' "$root/etc/os-release"
}

# Tests that run at once wait for one build instead of racing.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if ! valid; then
  echo "debian11-rootfs: building $SUITE in $root" >&2
  rm -rf "$root" "$root.new"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root.new" "$MIRROR" \
    >"$(dirname "$root")/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $(dirname "$root")/debootstrap.log"
  # Packages come from the same mirror as the root itself.
  echo "deb $MIRROR $SUITE main" >"$root.new/etc/apt/sources.list"
  rm -rf "$root.new/var/cache/apt/archives/"*.deb
  echo "$RECIPE" >"$root.new/.troll-rootfs"
  mv "$root.new" "$root"
  valid || die "the new root in $root does not work"
fi
echo "$root"
