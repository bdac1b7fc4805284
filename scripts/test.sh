#!/usr/bin/env bash
# The test command: `scripts/test.sh [CARGO TEST ARGS...]`.
#
# Installs what the test suite needs and then runs `cargo test --workspace`, so that it
# passes on a fresh machine that has only rustup, a C compiler and this repository:
# - the rustup target of the bare-metal firmware tests (`thumbv7em-none-eabihf`, for the
#   toolchain pinned in rust-toolchain.toml, which rustup installs on first use);
# - the system tools the tests run: `qemu-system-arm` (firmware), `gcc` and `valgrind`
#   (the C API), `python3` with `venv` and `pip` (gguf-py). As root with apt-get they are
#   installed; otherwise the script names the command to run and stops;
# - gguf-py (`pip install gguf`, llama.cpp's GGUF reader) in a virtual environment under
#   target/gguf-py, which tests/tests/convert.rs runs scripts/check_gguf.py with
#   (`LLAMA2_GGUF_PYTHON`); a missing gguf-py fails that test, it is never skipped.
# Extra arguments go to `cargo test` (for example `scripts/test.sh --test encode`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly FIRMWARE_TARGET=thumbv7em-none-eabihf

if ! command -v rustup >/dev/null 2>&1; then
    echo "test.sh: rustup is needed (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml" >&2
    exit 1
fi
# Run in the repository, so this is the pinned toolchain's target list.
if ! rustup target list --installed | grep -qx "$FIRMWARE_TARGET"; then
    echo "test.sh: adding the rustup target $FIRMWARE_TARGET (firmware tests)"
    rustup target add "$FIRMWARE_TARGET"
fi

# tool -> Debian package that provides it
declare -A package_of=(
    [qemu-system-arm]=qemu-system-arm
    [gcc]=gcc
    [valgrind]=valgrind
    [python3]=python3
)
missing=()
for tool in qemu-system-arm gcc valgrind python3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
# The virtual environment for gguf-py needs the venv module and pip (separate packages on
# Debian).
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv python3-pip)
fi
if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        echo "test.sh: the tests need ${missing[*]}; install them, for example with:" >&2
        echo "  sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

# gguf-py, in a virtual environment of its own (no system Python packages are touched).
readonly GGUF_VENV=target/gguf-py
# Pinned, so that a new release cannot change what the check means without a commit here.
readonly GGUF_PY_VERSION=0.19.0
readonly GGUF_PY="gguf==$GGUF_PY_VERSION"
if ! "$GGUF_VENV/bin/python" -c "import sys, importlib.metadata as m
sys.exit(m.version('gguf') != '$GGUF_PY_VERSION')" >/dev/null 2>&1; then
    echo "test.sh: installing gguf-py ($GGUF_PY) into $GGUF_VENV"
    python3 -m venv "$GGUF_VENV"
    "$GGUF_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$GGUF_PY"
fi
export LLAMA2_GGUF_PYTHON="$PWD/$GGUF_VENV/bin/python"

exec cargo test --workspace "$@"
