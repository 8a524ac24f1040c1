#!/usr/bin/env bash
# The whole test suite: format, lints, unit, integration and lab tests.
# Run as root on Debian/Ubuntu; lab tests build their own network
# namespaces and remove them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast -- --test-threads 2
