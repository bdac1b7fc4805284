#!/usr/bin/env bash
# Miri (nightly) over llama2-core's unit tests, which run on small synthetic models: checks
# the safe code for panics the tests reach and the SIMD `unsafe` code for undefined
# behaviour (out-of-bounds or misaligned accesses, aliasing violations).
#
#   scripts/miri.sh [all]   every unit test with the scalar kernels (default target
#                           features), then every unit test again compiled with AVX2+FMA,
#                           so that Miri interprets the `unsafe` AVX2 loops (slow: about
#                           20 minutes each on a busy 2-core machine)
#   scripts/miri.sh ci      the tests of the modules that handle untrusted input and the
#                           kernels (checkpoint, config, tokenizer, sampler, text, weights,
#                           kernels, gguf, gguf_llama, and quant's per-type decoder tests;
#                           its slow wide-product tests are left to `all`) with the scalar
#                           kernels, then the kernel tests with AVX2+FMA: about 8 minutes
#                           on a busy 2-core machine
#   scripts/miri.sh scalar|avx2 [FILTER...]   one pass, optionally filtered
#
# libm computes sqrtf with inline assembly on x86, which Miri cannot run; its portable
# version (correctly rounded, so bit-identical) is used instead via libm's
# `force-soft-floats` feature.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly TOOLCHAIN="${MIRI_TOOLCHAIN:-nightly}"
readonly INPUT_MODULES=(checkpoint:: config:: tokenizer:: sampler:: text:: weights:: kernels:: gguf:: gguf_llama:: quant::tests::q quant::tests::float_types)
mode="${1:-all}"
case "$mode" in
all | ci | scalar | avx2) shift || true ;;
*) mode=all ;;
esac

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
rustup component add --toolchain "$TOOLCHAIN" miri rust-src
cargo "+$TOOLCHAIN" miri setup

# pass LABEL avx2|scalar FILTER...
pass() {
    local label=$1 kernels=$2
    shift 2
    local env=()
    if [[ "$kernels" == avx2 ]]; then
        [[ "$(uname -m)" == x86_64 ]] || {
            echo "miri: skipping $label (not x86_64)"
            return
        }
        # Own target directory: different RUSTFLAGS would otherwise rebuild every time.
        env=(RUSTFLAGS="-Ctarget-feature=+avx2,+fma" CARGO_TARGET_DIR=target/miri-avx2)
    fi
    echo "miri: llama2-core unit tests, $label"
    local start=$SECONDS
    env "${env[@]}" cargo "+$TOOLCHAIN" miri test -p llama2-core --lib \
        --features libm/force-soft-floats -- "$@"
    echo "miri: $label passed in $((SECONDS - start)) s"
}

case "$mode" in
all)
    pass "scalar kernels" scalar "$@"
    pass "AVX2+FMA kernels" avx2 "$@"
    ;;
ci)
    pass "input-handling modules, scalar kernels" scalar "${INPUT_MODULES[@]}"
    pass "kernels, AVX2+FMA" avx2 kernels::
    ;;
scalar) pass "scalar kernels" scalar "$@" ;;
avx2) pass "AVX2+FMA kernels" avx2 "$@" ;;
esac
