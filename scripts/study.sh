#!/usr/bin/env bash
# The length study: train the four translators for the same time budget, evaluate each by
# source length and on concatenated sentences, and compare them in one table and two figures
# (a re-make of Bahdanau et al. 2014, Figure 2).
#
#   scripts/study.sh                                  # four runs in runs/study, 20 minutes each
#   OUT=runs/quick BUDGET=300 K=1 scripts/study.sh --device cuda
#
# OUT      where the runs, study.md, study.png and curves.png go      [runs/study]
# BUDGET   training seconds per model                                 [1200]
# K        train on concatenations of up to K consecutive pairs       [4]
# DATASET  hub id or local directory, passed to `seq2seq train --dataset` if set
# Any further arguments go to every `seq2seq train`.
set -euo pipefail

OUT=${OUT:-runs/study}
BUDGET=${BUDGET:-1200}
K=${K:-4}
MODELS=(rnn lstm bahdanau transformer)

dataset=()
if [[ -n "${DATASET:-}" ]]; then
  dataset=(--dataset "$DATASET")
fi

timed() {  # timed LABEL COMMAND...: run the command, then say how long it took
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "study: $label took $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s" >&2
}

mkdir -p "$OUT"
runs=()
for model in "${MODELS[@]}"; do
  run="$OUT/$model"
  timed "training $model" seq2seq train --model "$model" --time-budget "$BUDGET" --run-dir "$run" \
    --set "data.concat_k=$K" ${dataset[@]+"${dataset[@]}"} "$@"
  timed "evaluating $model" seq2seq eval "$run" --concat 1,2,4,6
  runs+=("$run")
done

timed "comparing" seq2seq compare "${runs[@]}" --format markdown \
  --plot "$OUT/study.png" --curves "$OUT/curves.png" > "$OUT/study.md.tmp"
mv "$OUT/study.md.tmp" "$OUT/study.md"
seq2seq compare "${runs[@]}"
echo "study: wrote $OUT/study.md, $OUT/study.png and $OUT/curves.png" >&2
