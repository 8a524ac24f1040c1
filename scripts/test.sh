#!/usr/bin/env bash
# The whole test suite: format, lints, unit, integration, provider and lab
# tests. Run as root on Debian/Ubuntu; lab tests build their own network
# namespaces and remove them, provider tests run against local emulators
# (Prism for Vultr's OpenAPI spec, moto for EC2) and never reach a cloud.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
scripts/setup-prism.sh
scripts/setup-moto.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The release artifacts (glibc 2.17 binary, tarball, .deb, SHA256SUMS) for
# tests/dist_debian11.rs, which runs them in Debian 11.
scripts/package.sh target/dist
export TROLL_DIST_DIR=$PWD/target/dist
cargo test --workspace --locked --no-fail-fast -- --test-threads 2
# The decision function under libFuzzer with ASan for a bounded time
# (an hour by hand: scripts/fuzz.sh 3600).
scripts/fuzz.sh "${TROLL_FUZZ_SECONDS:-120}"
