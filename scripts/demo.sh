#!/usr/bin/env bash
# Quick start: install what is needed, build troll, run the main job: the
# whole trick in two network namespaces on this machine (needs root).
# Arguments go to `troll demo`, e.g. --client mtr, --keep, or a message.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/troll demo "$@"
