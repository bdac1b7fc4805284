#!/usr/bin/env bash
# Tells a story with the real stories260K model (260K parameters, trained on TinyStories):
#
#   scripts/story.sh                  # llama2 stories260K.bin -z tok512.bin -t 0 -n 200 -i "Once upon a time"
#   scripts/story.sh -t 0.8 -s 42     # any llama2 flags; a flag you give replaces the default
#
# The model and tokenizer are taken from ${LLAMA2_FIXTURES:-../shared/fixtures}/models/
# (relative to the repository root) when they are there; otherwise they are downloaded once,
# with curl, from their public home (the Hugging Face repository karpathy/tinyllamas) into
# models/ in the repository.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixtures=${LLAMA2_FIXTURES:-../shared/fixtures}
[[ $fixtures == /* ]] || fixtures=$repo/$fixtures
base_url=${LLAMA2_MODELS_URL:-https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K}

model_dir=$fixtures/models
if [[ ! -f $model_dir/stories260K.bin || ! -f $model_dir/tok512.bin ]]; then
    model_dir=$repo/models
    mkdir -p "$model_dir"
    partial=
    trap 'rm -f "${partial:-}"' EXIT
    for name in stories260K.bin tok512.bin; do
        [[ -f $model_dir/$name ]] && continue
        if ! command -v curl >/dev/null; then
            echo "story.sh: error: curl is needed to download $name (or set LLAMA2_FIXTURES)" >&2
            exit 1
        fi
        echo "story.sh: downloading $base_url/$name into $model_dir/" >&2
        partial=$model_dir/$name.part
        if ! curl --fail --location --retry 3 --progress-bar --output "$partial" "$base_url/$name"; then
            echo "story.sh: error: could not download $base_url/$name" >&2
            exit 1
        fi
        mv "$partial" "$model_dir/$name"
    done
fi

# Defaults for the flags the caller did not give (clap rejects a flag given twice).
given=" "
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        -t* | --temperature | --temperature=*) given+="t " ;;
        -n* | --steps | --steps=*) given+="n " ;;
        -i* | --prompt | --prompt=*) given+="i " ;;
        -z* | --tokenizer | --tokenizer=*) given+="z " ;;
    esac
    case ${args[i]} in
        # A flag whose value is the next argument: skip the value.
        -[tpsnizmy] | --temperature | --top-p | --seed | --steps | --prompt | --tokenizer | \
            --mode | --system-prompt) i=$((i + 1)) ;;
    esac
done
defaults=()
[[ $given == *" z "* ]] || defaults+=(-z "$model_dir/tok512.bin")
[[ $given == *" t "* ]] || defaults+=(-t 0)
[[ $given == *" n "* ]] || defaults+=(-n 200)
[[ $given == *" i "* ]] || defaults+=(-i "Once upon a time")

cd "$repo"
exec cargo run --release -p llama2-cli -- "$model_dir/stories260K.bin" \
    ${defaults[@]+"${defaults[@]}"} ${args[@]+"${args[@]}"}
