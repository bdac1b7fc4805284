#!/usr/bin/env bash
# Runs `llama2 bench` over the published shapes, element types and thread counts and prints
# the generation tokens/s as the Markdown table of docs/PERFORMANCE.md, followed by the
# prompt-processing rates and the achieved share of the measured read bandwidth.
#
#   scripts/bench-table.sh [SHAPES...]      # default: 15M 42M 110M
#
# Each cell is the median of --runs runs (RUNS, default 5). Run it on an otherwise idle
# machine: every figure is a wall-clock rate.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-5}
shapes=("$@")
((${#shapes[@]})) || shapes=(15M 42M 110M)

cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p llama2-cli
llama2=$repo/target/release/llama2

field() { python3 -c "import json,sys; d=json.load(sys.stdin); v=d['$1']; print('-' if v is None else f'{v:$2}')"; }

declare -A gen prompt share
for shape in "${shapes[@]}"; do
    for dtype in f32 q8; do
        for threads in 1 2; do
            json=$("$llama2" bench --shape "$shape" --dtype "$dtype" --threads "$threads" \
                --runs "$runs" --prompt-tokens 128 --gen-tokens 128 --json)
            key=$shape/$dtype/$threads
            gen[$key]=$(field gen_tok_s .0f <<<"$json")
            prompt[$key]=$(field prompt_tok_s .0f <<<"$json")
            share[$key]=$(python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['achieved_gb_s']:.1f} GB/s ({100*d['bandwidth_share']:.0f}% of {d['machine_read_gb_s']:.1f})\")" <<<"$json")
            echo "$key: $json" >&2
        done
    done
done

echo "| shape | fp32 1 thread | fp32 2 threads | int8 1 thread | int8 2 threads |"
echo "|---|---|---|---|---|"
for shape in "${shapes[@]}"; do
    echo "| $shape | ${gen[$shape/f32/1]} | ${gen[$shape/f32/2]} | ${gen[$shape/q8/1]} | ${gen[$shape/q8/2]} |"
done
echo
echo "Prompt processing (128 tokens, batches of 16), tokens/s:"
echo
echo "| shape | fp32 1 thread | fp32 2 threads | int8 1 thread | int8 2 threads |"
echo "|---|---|---|---|---|"
for shape in "${shapes[@]}"; do
    echo "| $shape | ${prompt[$shape/f32/1]} | ${prompt[$shape/f32/2]} | ${prompt[$shape/q8/1]} | ${prompt[$shape/q8/2]} |"
done
echo
echo "Achieved bandwidth during generation (weights read per token × tokens/s):"
echo
echo "| shape | fp32 1 thread | fp32 2 threads | int8 1 thread | int8 2 threads |"
echo "|---|---|---|---|---|"
for shape in "${shapes[@]}"; do
    echo "| $shape | ${share[$shape/f32/1]} | ${share[$shape/f32/2]} | ${share[$shape/q8/1]} | ${share[$shape/q8/2]} |"
done
