#!/usr/bin/env bash
# Coverage-guided fuzzing of llama2-core with libFuzzer and AddressSanitizer (nightly Rust),
# debug assertions and overflow checks on. The targets are in fuzz/ (a cargo-fuzz project:
# `cargo +nightly fuzz run model_parse` works too); this script builds the same binaries with
# cargo alone, so it needs no cargo-fuzz install.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]  run each target for SECONDS (default 60), one after
#                                          the other; new inputs go to fuzz/work/<target>
#   scripts/fuzz.sh --ci                   a short bounded pass: 15 s per target, new inputs
#                                          discarded (what CI runs)
#   scripts/fuzz.sh --merge [TARGET...]    add the inputs of fuzz/work/<target> that reach new
#                                          coverage to fuzz/corpus/<target> (kept in git)
#   scripts/fuzz.sh --cmin [TARGET...]     minimize fuzz/corpus/<target> in place
#
# Targets: model_parse tokenizer_parse encode forward_sample gguf_parse gguf_model. A crash, hang (an input running
# longer than FUZZ_TIMEOUT, default 60 s: niced runs on a busy machine stall for seconds)
# or sanitizer report stops that target, saves the input under fuzz/artifacts/<target>/
# and makes the script exit 1 after the other targets ran. Fix the bug and keep the
# artifact: tests/tests/fuzz_regressions.rs replays fuzz/corpus and fuzz/artifacts on stable.
# The encode target reads tok512.bin and tokenizer.bin from the fixtures
# (${LLAMA2_FIXTURES:-../shared/fixtures}). Runs under `nice -n 19`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root=$(pwd)
readonly ALL_TARGETS=(model_parse tokenizer_parse encode forward_sample gguf_parse gguf_model)
readonly TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

mode=run
seconds=60
case "${1:-}" in
--ci)
    mode=ci
    seconds="${FUZZ_CI_SECONDS:-15}"
    shift
    ;;
--merge | --cmin)
    mode="${1#--}"
    shift
    ;;
'' | *[!0-9]*) ;;
*)
    seconds=$1
    shift
    ;;
esac
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=("${ALL_TARGETS[@]}")
fi
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || {
        echo "fuzz: unknown target $t (one of: ${ALL_TARGETS[*]})" >&2
        exit 2
    }
done

fixtures="${LLAMA2_FIXTURES:-../shared/fixtures}"
[[ "$fixtures" == /* ]] || fixtures="$repo_root/$fixtures"
export LLAMA2_FIXTURES="$fixtures"

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
triple=$(rustup run "$TOOLCHAIN" rustc -vV | sed -n 's/^host: //p')

# The flags cargo-fuzz passes (sancov for libFuzzer, ASan), plus debug assertions and
# overflow checks. With --target, RUSTFLAGS do not reach build scripts and proc macros.
rustflags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cllvm-args=-sanitizer-coverage-stack-depth
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0
    --cfg fuzzing
    -Zsanitizer=address
    -Cdebug-assertions
    -Coverflow-checks
    -Ccodegen-units=1
    -Cforce-frame-pointers
)
echo "fuzz: building the targets ($TOOLCHAIN, $triple, AddressSanitizer)"
RUSTFLAGS="${rustflags[*]}" nice -n 19 cargo "+$TOOLCHAIN" build --manifest-path fuzz/Cargo.toml \
    --release --target "$triple" --bins
bin_dir="fuzz/target/$triple/release"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

mkdir -p fuzz/logs
failed=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    case "$mode" in
    merge)
        mkdir -p "fuzz/work/$t"
        nice -n 19 "$bin_dir/$t" -merge=1 "$corpus" "fuzz/work/$t" 2>&1 | tail -n 3
        continue
        ;;
    cmin)
        tmp=$(mktemp -d)
        nice -n 19 "$bin_dir/$t" -merge=1 "$tmp" "$corpus" 2>&1 | tail -n 3
        rm -rf "$corpus" && mv "$tmp" "$corpus"
        continue
        ;;
    ci) work=$(mktemp -d) ;;
    run)
        work="fuzz/work/$t"
        mkdir -p "$work"
        ;;
    esac
    log="fuzz/logs/$t.log"
    echo "fuzz: $t for ${seconds}s (log: $log)"
    status=0
    nice -n 19 "$bin_dir/$t" "$work" "$corpus" \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-60}" -rss_limit_mb=2048 \
        -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || status=$?
    # The last status line (executions, coverage, corpus) and the final statistics.
    grep -E '^#[0-9]+' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    if ((status != 0)); then
        echo "fuzz: $t FAILED (exit $status); see $log and fuzz/artifacts/$t/" >&2
        grep -E 'ERROR|panicked|SUMMARY' "$log" | head -n 5 >&2 || true
        failed+=("$t")
    fi
    if [[ "$mode" == ci ]]; then
        rm -rf "$work"
    fi
done
if ((${#failed[@]} > 0)); then
    echo "fuzz: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ok (${targets[*]})"
