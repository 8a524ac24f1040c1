#!/usr/bin/env bash
# Installs moto (a local emulator of the AWS APIs) into .tools/moto-venv for
# the AWS provider's tests (providers/tests/aws_*.rs), which start
# `.tools/moto-venv/bin/moto_server` on 127.0.0.1 and point the real SDK at
# it. No test reaches AWS.
#
# Idempotent: a venv that already has the pinned version is left alone.
# Run as root on Debian/Ubuntu (it installs python3-venv with apt-get when
# the system Python cannot make a virtualenv). Set TROLL_SKIP_APT=1 to skip
# the package step.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt-install.sh

# The pin: the tests' fake covers exactly the gaps of moto 5.2 (see
# providers/tests/aws/proxy.rs); a newer moto may close some of them.
MOTO_VERSION=5.2.5
venv=.tools/moto-venv

installed() {
  [ -x "$venv/bin/moto_server" ] &&
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" = "$MOTO_VERSION" ]
}

if installed; then
  echo "setup-moto: moto $MOTO_VERSION already in $venv"
  exit 0
fi

# Debian's own Python: stable path, and its venv module comes from a
# package we can install.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || true)

if [ -z "$python" ] || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "${TROLL_SKIP_APT:-0}" = 1 ]; then
    echo "setup-moto: python3 with the venv module is missing (apt-get install python3-venv)" >&2
    exit 1
  fi
  apt_install setup-moto "run as root to install python3-venv, or install it yourself" \
    python3 python3-venv
  python=/usr/bin/python3
fi

echo "setup-moto: creating $venv with $("$python" --version 2>&1)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"

if ! installed; then
  echo "setup-moto: moto $MOTO_VERSION did not install into $venv" >&2
  exit 1
fi
echo "setup-moto: moto $MOTO_VERSION installed in $venv"
