#!/usr/bin/env bash
# Installs Prism, the OpenAPI mock server that the Vultr contract test
# (providers/tests/vultr_contract.rs) runs against shared/specs/vultr-openapi.json,
# into .tools/prism with npm. Idempotent; run as root on Debian/Ubuntu. When
# node or npm is missing it installs Debian's nodejs and npm packages first.
# Prism comes from the npm registry only; nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt-install.sh

version=5.16.0
dest=.tools/prism
bin="$dest/node_modules/.bin/prism"

if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null || true)" = "$version" ]; then
  echo "setup-prism: prism $version is installed in $dest"
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install setup-prism "node and npm are missing; run this as root to install Debian's nodejs and npm" \
    nodejs npm
fi

mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name": "troll-tools-prism", "private": true}' >"$dest/package.json"
echo "setup-prism: installing @stoplight/prism-cli@$version into $dest (node $(node --version))"
# Prism declares a newer Node engine than Debian ships; it runs on Node 18+
# all the same, so the engine check only warns.
npm install --prefix "$dest" --no-audit --no-fund --loglevel=error --engine-strict=false \
  "@stoplight/prism-cli@$version"

if [ "$("$bin" --version 2>/dev/null || true)" != "$version" ]; then
  echo "setup-prism: $bin did not run after the install" >&2
  exit 1
fi
echo "setup-prism: prism $version is installed in $dest"
