#!/usr/bin/env bash
# Quick start: install what is needed, build troll, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/troll preview "$(printf '0------------------------------0\nDouglas Adams\nMostly Harmless\n0------------------------------0\n\nDont Panic')" "$@"
