#!/usr/bin/env bash
# Measures this engine side by side with llama2.c and llama.cpp on the same machine and the
# same random weights of the published shapes, and prints Markdown tables of medians and
# ratios (docs/PERFORMANCE.md, "Comparing with other engines").
#
#   scripts/compare.sh --work DIR [--run PATH] [--runq PATH] [--llama-bench PATH]
#       [--llama2 PATH] [--tokenizer FILE] [--shapes "15M 42M 110M"]
#       [--types "f32 q8_0 q4_0 q4_k"] [--threads "1 2"] [--rounds 3]
#       [--idle-threshold PERCENT] [--idle-timeout SECONDS] [--quick]
#
# Every peer is optional: a missing one's columns show "-". --quick is one round of one
# shape (the first of --shapes, 15M by default), to try the script.
#
# Engines and files. The model files go to --work and are made once by our binary (again
# when it is newer than them): `llama2 bench --shape S --dtype f32 --save-model S-f32.bin`
# (llama2.c version 0, the layout llama2.c's `run` reads), `--dtype q8 --save-model
# S-q8_0.bin` (version 2 with export.py's group size, for `runq`), and from S-f32.bin
# `llama2 convert S-f32.bin S-TYPE.gguf -z TOKENIZER --type TYPE` for every type (a shape
# whose rows the type's blocks do not divide, such as Q4_K below 110M, is skipped with a
# note). Per type:
#   f32:            ours and llama2.c `run` on S-f32.bin, llama.cpp on S-f32.gguf
#   q8_0:           ours and llama.cpp on S-q8_0.gguf, llama2.c `runq` on S-q8_0.bin
#   q4_0, q4_k:     ours and llama.cpp on S-TYPE.gguf (llama2.c has no such type)
# Each round runs every engine once per cell (shape, type, threads), the engines' order
# rotating from round to round, each run started only once the machine is idle (the share
# of idle CPU time over one second at least --idle-threshold, default 90 %; after
# --idle-timeout seconds, default 300, it runs anyway and the run is counted as not idle).
#   generation tg128 from an empty context, tokens/s:
#     ours       llama2 bench MODEL --threads T --prompt-tokens 0 --gen-tokens 128 --runs 1 --json
#     llama2.c   OMP_NUM_THREADS=T run MODEL -z TOKENIZER -n 128 -t 0   (its "achieved tok/s")
#     llama.cpp  llama-bench -m MODEL -p 128 -n 128 -t T -r 1 -o json   (its tg128 and pp128)
#   (our bench makes one untimed warm-up run first, as llama-bench does by default)
#   prompt processing pp128, tokens/s:
#     ours       llama2 bench MODEL --threads T --prompt-tokens 128 --gen-tokens 0 --runs 1 --json
#     llama.cpp  (the same llama-bench run; llama2.c has no batched prompt)
# Sampling is greedy everywhere (`llama2 bench` takes the argmax, llama-bench samples
# nothing): llama2.c's default top-p would sort most of the 32000 candidates of a random
# model's flat distribution every token and time its sort instead of its forward pass.
# llama2.c stops early if it samples BOS (id 1); greedy decoding of these models runs all
# 128 steps, and its rate is per generated token either way. The tables are medians over
# the rounds; a ratio is the median of the per-round ratios. The raw per-run figures go to
# DIR/compare-DATE.csv.
#
# Building the peers (in a scratch folder, never in this repository), as measured so far:
#   llama2.c, commit 350e04f (https://github.com/karpathy/llama2.c):
#     git clone https://github.com/karpathy/llama2.c && cd llama2.c && git checkout 350e04f
#     gcc -Ofast -fopenmp -march=native run.c -lm -o run      # its Makefile's `runomp`
#     gcc -Ofast -fopenmp -march=native runq.c -lm -o runq
#   llama.cpp, commit c392e50 (https://github.com/ggml-org/llama.cpp):
#     git clone https://github.com/ggml-org/llama.cpp && cd llama.cpp && git checkout c392e50
#     cmake -B build -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release
#     cmake --build build --target llama-bench -j1     # build/bin/llama-bench
# (gcc 12.2, cmake 3.25 on Debian 12.) The tokenizer is any 32000-piece llama2.c
# tokenizer.bin; the default is the fixtures' (../shared/fixtures/models/tokenizer.bin).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "compare.sh: error: $*" >&2
    exit 1
}
note() { echo "compare.sh: $*" >&2; }

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

run_bin='' runq_bin='' llama_bench='' llama2='' work='' quick=0
tokenizer=$repo/../shared/fixtures/models/tokenizer.bin
shapes='15M 42M 110M' types='f32 q8_0 q4_0 q4_k' thread_counts='1 2' rounds=3
idle_threshold=90 idle_timeout=300
while (($#)); do
    case $1 in
        --run | --runq | --llama-bench | --llama2 | --work | --tokenizer | --shapes | --types | \
            --threads | --rounds | --idle-threshold | --idle-timeout)
            (($# >= 2)) || die "$1 needs a value"
            case $1 in
                --run) run_bin=$2 ;;
                --runq) runq_bin=$2 ;;
                --llama-bench) llama_bench=$2 ;;
                --llama2) llama2=$2 ;;
                --work) work=$2 ;;
                --tokenizer) tokenizer=$2 ;;
                --shapes) shapes=$2 ;;
                --types) types=$2 ;;
                --threads) thread_counts=$2 ;;
                --rounds) rounds=$2 ;;
                --idle-threshold) idle_threshold=$2 ;;
                --idle-timeout) idle_timeout=$2 ;;
            esac
            shift 2
            ;;
        --quick)
            quick=1
            shift
            ;;
        -h | --help) usage ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ -n $work ]] || die "--work: a directory for the model files and the CSV is needed"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds: expected a whole number, 1 or more, not '$rounds'"
[[ $idle_threshold =~ ^[0-9]+$ ]] || die "--idle-threshold: expected a percentage, not '$idle_threshold'"
[[ $idle_timeout =~ ^[0-9]+$ ]] || die "--idle-timeout: expected seconds, not '$idle_timeout'"
read -ra shapes <<<"$shapes"
read -ra types <<<"$types"
read -ra thread_counts <<<"$thread_counts"
if ((quick)); then
    rounds=1
    shapes=("${shapes[0]}")
fi
for shape in "${shapes[@]}"; do
    [[ $shape =~ ^(15M|42M|110M)$ ]] || die "--shapes: '$shape' is not one of 15M 42M 110M"
done
for type in "${types[@]}"; do
    [[ $type =~ ^(f32|q8_0|q4_0|q4_k)$ ]] || die "--types: '$type' is not one of f32 q8_0 q4_0 q4_k"
done
for threads in "${thread_counts[@]}"; do
    [[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads: '$threads' is not a thread count"
done

# A given binary must run; an absent one is a peer left out.
check_binary() {
    local flag=$1 path=$2
    [[ -z $path ]] && return 0
    [[ -f $path ]] || die "$flag: $path: no such file"
    [[ -x $path ]] || die "$flag: $path: not executable"
}
check_binary --run "$run_bin"
check_binary --runq "$runq_bin"
check_binary --llama-bench "$llama_bench"
if [[ -z $llama2 ]]; then
    llama2=$repo/target/release/llama2
    [[ -x $llama2 ]] || die "--llama2: $llama2 does not exist; build it (cargo build --release -p llama2-cli) or pass --llama2"
fi
check_binary --llama2 "$llama2"
[[ -f $tokenizer ]] || die "--tokenizer: $tokenizer: no such file"
command -v python3 >/dev/null || die "python3 is needed to read the JSON reports and make the tables"
mkdir -p "$work/logs" || die "--work: cannot create $work"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
csv=$work/compare-$stamp.csv
echo "round,shape,type,threads,engine,metric,tok_s,idle,model" >"$csv"

# Runs a command with its output in the logs; on failure, stops with its stderr.
# Usage: checked LOGNAME COMMAND...; its stdout is in $work/logs/LOGNAME.out.
checked() {
    local log=$work/logs/$1
    shift
    local status=0
    "$@" >"$log.out" 2>"$log.err" || status=$?
    if ((status)); then
        {
            echo "compare.sh: error: this failed (exit $status): $*"
            if [[ -s $log.err ]]; then
                echo "its stderr ($log.err):"
                tail -n 30 "$log.err"
            else
                echo "(it printed nothing on stderr)"
            fi
        } >&2
        exit 1
    fi
}

# The model files of a shape (made when missing or older than our binary).
# Sets made[TYPE] to the file each engine family runs, or an empty string with skipped[...].
declare -A skipped=()
fresh() { [[ -s $1 && ! $llama2 -nt $1 && (-z ${2:-} || ! $2 -nt $1) ]]; }
make_models() {
    local shape=$1
    local f32=$work/$shape-f32.bin
    fresh "$f32" || checked "save-$shape-f32" "$llama2" bench --shape "$shape" --dtype f32 --save-model "$f32"
    if [[ -n $runq_bin ]] && [[ " ${types[*]} " == *" q8_0 "* ]]; then
        local q8=$work/$shape-q8_0.bin
        fresh "$q8" || checked "save-$shape-q8" "$llama2" bench --shape "$shape" --dtype q8 --save-model "$q8"
    fi
    local type gguf
    for type in "${types[@]}"; do
        gguf=$work/$shape-$type.gguf
        fresh "$gguf" "$f32" && continue
        if ! "$llama2" convert "$f32" "$gguf" -z "$tokenizer" --type "$type" \
            >/dev/null 2>"$work/logs/convert-$shape-$type.err"; then
            skipped[$shape/$type]=$(tail -n 1 "$work/logs/convert-$shape-$type.err" | sed "s/^llama2: error: //")
            note "no $type file of $shape: ${skipped[$shape/$type]}"
        fi
    done
}

# Idle share of all CPUs over one second, in percent.
idle_share() {
    local a b
    read -ra a < <(head -n 1 /proc/stat)
    sleep 1
    read -ra b < <(head -n 1 /proc/stat)
    local total=0 idle i
    for ((i = 1; i < ${#a[@]}; i++)); do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $((total > 0 ? 100 * idle / total : 0))
}

# Waits for an idle machine; sets `idle` to yes, or to no after the timeout.
wait_idle() {
    local start=$SECONDS share
    while :; do
        share=$(idle_share)
        if ((share >= idle_threshold)); then
            idle=yes
            return
        fi
        if ((SECONDS - start >= idle_timeout)); then
            note "machine still busy after ${idle_timeout}s (idle ${share}%); running anyway"
            idle=no
            return
        fi
    done
}

record() { echo "$1,$2,$3,$4,$5,$6,$7,$idle,$8" >>"$csv"; }

# One JSON field of a report on stdin (null as "").
json_field() {
    python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print("" if v is None else v)' "$1"
}

run_ours() {
    local round=$1 shape=$2 type=$3 threads=$4 model=$5 log=ours-$2-$3-$4-r$1 value
    wait_idle
    checked "$log-tg" "$llama2" bench "$model" --threads "$threads" --prompt-tokens 0 \
        --gen-tokens 128 --runs 1 --json
    value=$(json_field gen_tok_s <"$work/logs/$log-tg.out")
    record "$round" "$shape" "$type" "$threads" ours tg128 "$value" "$model"
    wait_idle
    checked "$log-pp" "$llama2" bench "$model" --threads "$threads" --prompt-tokens 128 \
        --gen-tokens 0 --runs 1 --json
    value=$(json_field prompt_tok_s <"$work/logs/$log-pp.out")
    record "$round" "$shape" "$type" "$threads" ours pp128 "$value" "$model"
}

run_llama2c() {
    local round=$1 shape=$2 type=$3 threads=$4 model=$5 binary=$6 log=llama2c-$2-$3-$4-r$1 value
    wait_idle
    checked "$log" env OMP_NUM_THREADS="$threads" "$binary" "$model" -z "$tokenizer" -n 128 -t 0
    value=$(sed -n 's/^achieved tok\/s: \([0-9.]*\).*/\1/p' "$work/logs/$log.err")
    [[ -n $value ]] || die "$binary printed no 'achieved tok/s' on $model (see $work/logs/$log.err)"
    record "$round" "$shape" "$type" "$threads" llama2.c tg128 "$value" "$model"
}

llamacpp_commit=''
run_llamacpp() {
    local round=$1 shape=$2 type=$3 threads=$4 model=$5 log=llamacpp-$2-$3-$4-r$1 results
    wait_idle
    checked "$log" "$llama_bench" -m "$model" -p 128 -n 128 -t "$threads" -r 1 -o json
    # One line per test: the commit, then "pp128 RATE" and "tg128 RATE".
    results=$(python3 -c '
import json, sys
tests = json.load(open(sys.argv[1]))
print(tests[0]["build_commit"])
for t in tests:
    if t["n_prompt"] > 0 and t["n_gen"] == 0:
        print("pp%d %s" % (t["n_prompt"], t["avg_ts"]))
    elif t["n_gen"] > 0 and t["n_prompt"] == 0:
        print("tg%d %s" % (t["n_gen"], t["avg_ts"]))
' "$work/logs/$log.out") || die "llama-bench's report is not the JSON expected (see $work/logs/$log.out)"
    local commit metric value
    {
        read -r commit
        while read -r metric value; do
            record "$round" "$shape" "$type" "$threads" llama.cpp "$metric" "$value" "$model"
        done
    } <<<"$results"
    llamacpp_commit=$commit
}

engines=(ours)
[[ -n $run_bin || -n $runq_bin ]] && engines+=(llama2.c)
[[ -n $llama_bench ]] && engines+=(llama.cpp)

for shape in "${shapes[@]}"; do
    note "model files of $shape in $work"
    make_models "$shape"
done

for ((round = 1; round <= rounds; round++)); do
    for shape in "${shapes[@]}"; do
        for type in "${types[@]}"; do
            [[ -n ${skipped[$shape/$type]:-} ]] && continue
            gguf=$work/$shape-$type.gguf
            for threads in "${thread_counts[@]}"; do
                note "round $round/$rounds: $shape $type, $threads thread(s)"
                # The engines take turns first, so none always runs on a warmer machine.
                for ((e = 0; e < ${#engines[@]}; e++)); do
                    engine=${engines[(e + round - 1) % ${#engines[@]}]}
                    case $engine/$type in
                        ours/f32) run_ours "$round" "$shape" "$type" "$threads" "$work/$shape-f32.bin" ;;
                        ours/*) run_ours "$round" "$shape" "$type" "$threads" "$gguf" ;;
                        llama2.c/f32)
                            if [[ -n $run_bin ]]; then
                                run_llama2c "$round" "$shape" "$type" "$threads" \
                                    "$work/$shape-f32.bin" "$run_bin"
                            fi
                            ;;
                        llama2.c/q8_0)
                            if [[ -n $runq_bin ]]; then
                                run_llama2c "$round" "$shape" "$type" "$threads" \
                                    "$work/$shape-q8_0.bin" "$runq_bin"
                            fi
                            ;;
                        llama.cpp/*) run_llamacpp "$round" "$shape" "$type" "$threads" "$gguf" ;;
                    esac
                done
            done
        done
    done
done

# What was measured, with what.
commit_of() { git -C "$(dirname "$1")" log -1 --format=%h 2>/dev/null || echo "unknown commit"; }
ours_commit=$(git -C "$repo" log -1 --format=%h)
git -C "$repo" diff --quiet HEAD -- 2>/dev/null || ours_commit+=" (with uncommitted changes)"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
flags=$(grep -m 1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512_vnni)$' | tr '\n' ' ' || true)
peers=()
[[ -n $run_bin || -n $runq_bin ]] && peers+=("llama2.c $(commit_of "${run_bin:-$runq_bin}") (${run_bin:+run}${run_bin:+${runq_bin:+, }}${runq_bin:+runq})")
[[ -n $llama_bench ]] && peers+=("llama.cpp ${llamacpp_commit:-$(commit_of "$llama_bench")} (llama-bench)")
peer_list=$(printf '%s; ' "${peers[@]}")
peer_list=${peer_list%; }
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $cpu, $(nproc) CPUs, flags ${flags% }."
echo "Ours: commit $ours_commit ($llama2); peers: ${peer_list:-none}."
echo "Rounds: $rounds (medians; ratios are medians of per-round ratios); raw figures: $csv."
echo

python3 - "$csv" "${shapes[*]}" "${types[*]}" "${thread_counts[*]}" <<'EOF'
import csv, statistics, sys
from collections import defaultdict

path, shapes, types, threads = sys.argv[1], *[a.split() for a in sys.argv[2:]]
rows = list(csv.DictReader(open(path)))
runs = defaultdict(dict)  # (shape, type, threads, metric) -> {(engine, round): tok/s}
for r in rows:
    if r["tok_s"]:
        runs[(r["shape"], r["type"], r["threads"], r["metric"])][(r["engine"], r["round"])] = float(r["tok_s"])

def median(cell, engine):
    values = [v for (e, _), v in runs[cell].items() if e == engine]
    return statistics.median(values) if values else None

def ratio(cell, peer):
    per_round = [v / runs[cell][(peer, rnd)] for (e, rnd), v in runs[cell].items()
                 if e == "ours" and (peer, rnd) in runs[cell]]
    return statistics.median(per_round) if per_round else None

def show(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"

label = {"f32": "f32", "q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k": "Q4_K"}
cells = [(s, t, n) for s in shapes for t in types for n in threads]
print("Generation, 128 tokens (tg128), tokens/s:")
print()
print("| shape | type | threads | ours | llama2.c | llama.cpp | ours/llama2.c | ours/llama.cpp |")
print("|---|---|---|---|---|---|---|---|")
for s, t, n in cells:
    c = (s, t, n, "tg128")
    if not runs[c]:
        continue
    print(f"| {s} | {label[t]} | {n} | {show(median(c, 'ours'))} | {show(median(c, 'llama2.c'))} "
          f"| {show(median(c, 'llama.cpp'))} | {show(ratio(c, 'llama2.c'), 2)} | {show(ratio(c, 'llama.cpp'), 2)} |")
print()
print("Prompt processing, 128 tokens (pp128), tokens/s:")
print()
print("| shape | type | threads | ours | llama.cpp | ours/llama.cpp |")
print("|---|---|---|---|---|---|")
for s, t, n in cells:
    c = (s, t, n, "pp128")
    if not runs[c]:
        continue
    print(f"| {s} | {label[t]} | {n} | {show(median(c, 'ours'))} | {show(median(c, 'llama.cpp'))} "
          f"| {show(ratio(c, 'llama.cpp'), 2)} |")
busy = sum(1 for r in rows if r["idle"] == "no")
if busy:
    print()
    print(f"Note: {busy} of {len(rows)} figures come from runs started on a busy machine.")
EOF
for cell in "${!skipped[@]}"; do
    echo "Not measured: $cell (${skipped[$cell]})."
done
