#!/usr/bin/env bash
# Side by side with the peer toolkit on this machine: ROUNDS rounds of the JoeyNMT baseline and
# scripts/bench.py for the transformer and bahdanau, fp32 (the matched configuration) and bf16,
# the order alternated between rounds; one line per measurement. scripts/bench.py runs with
# tcmalloc where it is installed (its lines say "malloc"), JoeyNMT as its script runs it.
#
#   scripts/bench-cpu.sh [ROUNDS] [UPDATES]     # defaults: 2 rounds of 60 updates
#
# DATASET  Multi30k, a hub id or a local copy          [../shared/data/multi30k]
# JOEY     the JoeyNMT baseline script                 [../shared/bench/joeynmt-baseline]
set -euo pipefail
ROUNDS=${1:-2}
UPDATES=${2:-60}
DATASET=${DATASET:-../shared/data/multi30k}
JOEY=${JOEY:-../shared/bench/joeynmt-baseline}

ours() {  # ours MODEL PRECISION
  python scripts/bench.py --model "$1" --updates "$UPDATES" --device cpu --dataset "$DATASET" --decode 0 \
    --set "train.precision=$2" 2>/dev/null | sed "s/^/round $round: /"
}
joey() {  # joey MODEL
  "$JOEY" "$1" "$UPDATES" 2>/dev/null | tail -n 1 | sed "s/^/round $round: /"
}

for round in $(seq 1 "$ROUNDS"); do
  for model in transformer bahdanau; do
    if (( round % 2 )); then
      joey "$model"; ours "$model" fp32; ours "$model" bf16
    else
      ours "$model" bf16; ours "$model" fp32; joey "$model"
    fi
  done
done
