#!/usr/bin/env bash
# Makes (or reuses) a Debian 12 "bookworm" root file system that boots
# systemd, for the systemd path of `troll deploy`'s test
# (tests/deploy_ssh.rs): debootstrap --variant=minbase with systemd,
# dbus, openssh-server, iptables, nftables (priority important: on every
# Debian 12 server) and iproute2, into a cache outside the
# repo. The test boots it with systemd-nspawn over a read-only lower layer
# of an overlay, so it stays as built and later runs reuse it; a cache that
# is missing, half-built or of another recipe is rebuilt. Bookworm, like
# the build host, has the glibc the test's own troll needs. Prints the
# root's path. Run as root.
set -euo pipefail

SUITE=bookworm
MIRROR=${TROLL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=systemd,systemd-sysv,dbus,openssh-server,iptables,nftables,iproute2,procps
# Bump when the recipe below changes, so old caches are rebuilt.
RECIPE="$SUITE minbase $INCLUDE 1"
root=${TROLL_BOOKWORM_SYSTEMD_ROOT:-/var/cache/troll-tests/bookworm-systemd}

die() { echo "debian12-systemd-rootfs: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing; run scripts/install-deps.sh"

valid() {
  [ "$(cat "$root/.troll-rootfs" 2>/dev/null)" = "$RECIPE" ] &&
    [ -x "$root/lib/systemd/systemd" ] && [ -x "$root/usr/sbin/sshd" ] &&
    grep -q '^VERSION_ID="12"' "$root/etc/os-release"
}

# Tests that run at once wait for one build instead of racing.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if ! valid; then
  echo "debian12-systemd-rootfs: building $SUITE in $root" >&2
  rm -rf "$root" "$root.new"
  log="$(dirname "$root")/debootstrap-systemd.log"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root.new" "$MIRROR" \
    >"$log" 2>&1 || die "debootstrap failed; see $log"
  echo "deb $MIRROR $SUITE main" >"$root.new/etc/apt/sources.list"
  rm -rf "$root.new/var/cache/apt/archives/"*.deb
  # Each test brings its own throwaway host key; none is shared by runs.
  rm -f "$root.new/etc/ssh/ssh_host_"*
  # No timers that would start apt or fsck work inside the test's server.
  rm -f "$root.new/etc/systemd/system/timers.target.wants/"*
  echo "$RECIPE" >"$root.new/.troll-rootfs"
  mv "$root.new" "$root"
  valid || die "the new root in $root does not work"
fi
echo "$root"
