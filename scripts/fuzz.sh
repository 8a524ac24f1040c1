#!/usr/bin/env bash
# Fuzzes the responder's decision function for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]      default 60
#
# Installs cargo-fuzz when missing, runs fuzz target `decide` (fuzz/) for
# SECONDS on the stable toolchain (RUSTC_BOOTSTRAP=1 lets stable take the
# sanitizer flags cargo-fuzz passes), and exits non-zero when it finds a
# crash, printing the crashing input in hex. New interesting inputs are kept
# in fuzz/corpus/decide (git-ignored); fuzz/seeds/decide holds the committed
# seeds (real traceroute probes).
#
# Environment:
#   FUZZ_SANITIZER  address (default) or none (about twice the exec/s)
#   FUZZ_JOBS       parallel fuzzing processes (default 1)
#   CARGO_TARGET_DIR  where to build (default fuzz/target)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"

# Pinned, so every machine fuzzes with the same tool.
cargo_fuzz_version="0.13.2"
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    echo "fuzz.sh: installing cargo-fuzz $cargo_fuzz_version" >&2
    cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked
fi

target_args=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target_args=(--target-dir "$CARGO_TARGET_DIR")
fi

mkdir -p corpus/decide artifacts/decide
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

parallel=()
if [ "$jobs" -gt 1 ]; then
    parallel=(-jobs="$jobs" -workers="$jobs")
fi

export RUSTC_BOOTSTRAP=1
status=0
# -max_len: a jumbo IP packet is bigger, but 2 KiB covers every header
# case and a tracepath-sized probe; -timeout: one input taking 5 s is a hang.
cargo fuzz run "${target_args[@]}" --sanitizer "$sanitizer" decide \
    corpus/decide seeds/decide -- \
    -max_total_time="$seconds" -max_len=2048 -timeout=5 "${parallel[@]}" \
    -print_final_stats=1 2>&1 | tee "$log" || status=$?

if [ "$jobs" -gt 1 ]; then
    # With -jobs, libFuzzer writes each worker's output to fuzz-N.log.
    cat fuzz-*.log >>"$log" 2>/dev/null || true
    rm -f fuzz-*.log
fi
execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
rate=$(grep -h 'stat::average_exec_per_sec' "$log" | awk '{s += $2} END {print s + 0}')
echo "fuzz.sh: ${seconds}s, sanitizer ${sanitizer}, ${jobs} job(s): ${execs} executions, ${rate} exec/s"

crashes=$(grep -ho 'Test unit written to [^ ]*' "$log" | awk '{print $NF}' | sort -u || true)
if [ "$status" -ne 0 ] || [ -n "$crashes" ]; then
    echo "fuzz.sh: FAILED (cargo fuzz exit status $status)" >&2
    for file in $crashes; do
        [ -f "$file" ] || continue
        echo "crashing input $file ($(wc -c <"$file") bytes):" >&2
        od -An -v -tx1 "$file" | tr -d ' \n' >&2
        echo >&2
        echo "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run decide $file" >&2
    done
    exit 1
fi
