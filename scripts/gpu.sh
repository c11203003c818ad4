#!/usr/bin/env bash
# The GPU rows of the README, on a machine with one CUDA GPU: the `cuda` tests, the benchmark of
# the transformer and bahdanau in bf16 with and without torch.compile beside the JoeyNMT baseline
# on the same card, and one bahdanau run on all of Multi30k to early stopping, timed and evaluated.
# Each step has its own time limit and its log in OUT; OUT/summary.txt says how each ended.
#
#   scripts/gpu.sh OUT [STEP...]     steps: tests bench joey run (default: all, in that order)
#
# DATASET  Multi30k, a hub id or a local copy          [../shared/data/multi30k]
# JOEY     the JoeyNMT baseline script                 [../shared/bench/joeynmt-baseline]
# UPDATES  updates per benchmark                       [200]
set -uo pipefail

OUT=${1:?usage: scripts/gpu.sh OUT [tests] [bench] [joey] [run]}
shift
STEPS=("$@")
(( ${#STEPS[@]} )) || STEPS=(tests bench joey run)
DATASET=${DATASET:-../shared/data/multi30k}
JOEY=${JOEY:-../shared/bench/joeynmt-baseline}
UPDATES=${UPDATES:-200}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
mkdir -p "$OUT"

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, its output in OUT/NAME.log
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

bench=(python scripts/bench.py --updates "$UPDATES" --device cuda --dataset "$DATASET" --model)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
for s in "${STEPS[@]}"; do
  case $s in
    tests) step tests 120 python -m pytest -q -m cuda -p no:cacheprovider ;;
    bench)
      step bench-transformer 60 "${bench[@]}" transformer
      step bench-transformer-compile 90 "${bench[@]}" transformer --set train.compile=true --decode 0
      step bench-bahdanau 60 "${bench[@]}" bahdanau
      step bench-bahdanau-compile 90 "${bench[@]}" bahdanau --set train.compile=true --decode 0
      grep -h '^{' "$OUT"/bench-*.log > "$OUT/bench.jsonl" ;;
    joey)
      step joey-transformer 75 env JOEY_DEVICE=cuda "$JOEY" transformer "$UPDATES"
      step joey-bahdanau 75 env JOEY_DEVICE=cuda "$JOEY" bahdanau "$UPDATES" ;;
    run)
      step run-bahdanau 280 python -m seq2seq train --model bahdanau --device cuda --dataset "$DATASET" \
        --run-dir "$OUT/bahdanau" --time-budget 270
      step eval-bahdanau 40 python -m seq2seq eval "$OUT/bahdanau" --device cuda ;;
    *) echo "unknown step $s (tests, bench, joey, run)" >&2; exit 2 ;;
  esac
done
