#!/usr/bin/env bash
# The length study: train the four translators on Multi30k plus concatenations of up to K
# consecutive pairs, each with the same time budget in which its cosine schedule anneals (or
# until early stopping), evaluate each by source length and on 1, 2, 4 and 6 concatenated test
# sentences (greedy and beam 5), and compare them against bahdanau in one table and three
# figures (a re-make of Bahdanau et al. 2014, Figure 2, with significance and NLL by position).
#
#   JOBS=4 scripts/study.sh --device cuda --set train.precision=fp32   # the README's study, on one GPU
#   JOBS=2 BUDGET=14400 scripts/study.sh            # on a 2-core CPU: two at a time, one thread each
#
# Each model logs to OUT/MODEL.out. Run again after an interruption: it resumes unfinished
# runs and skips finished ones.
#
# OUT      where the runs, study.md and the figures go                [runs/study]
# BUDGET   training seconds per model                                 [14400]
# K        train on concatenations of up to K consecutive pairs       [4]
# JOBS     trainings at once, sharing the cores                       [1]
# DATASET  hub id or local directory, passed to `seq2seq train --dataset` if set
# Any further arguments go to every `seq2seq train`.
set -euo pipefail

OUT=${OUT:-runs/study}
BUDGET=${BUDGET:-330}
K=${K:-4}
JOBS=${JOBS:-1}
MODELS=(rnn lstm bahdanau transformer)  # the table's order
ORDER=(bahdanau transformer lstm rnn)   # the training order: the baseline first

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

study_one() {  # train (or resume) one model, then evaluate it greedy and with beam 5
  local model=$1 run="$OUT/$1"
  shift
  if [[ -f "$run/eval/test.beam5.json" ]]; then
    return
  elif [[ -f "$run/checkpoints/last.pt" ]]; then
    timed "training $model" seq2seq train --resume "$run" --time-budget "$BUDGET" "$@"
  else
    timed "training $model" seq2seq train --model "$model" --time-budget "$BUDGET" --run-dir "$run" \
      --set "data.concat_k=$K" --set train.schedule=cosine ${dataset[@]+"${dataset[@]}"} "$@"
  fi
  timed "evaluating $model" seq2seq eval "$run" --concat 1,2,4,6
  timed "evaluating $model, beam 5" seq2seq eval "$run" --concat 1,2,4,6 --beam 5
}

mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))}
for model in "${ORDER[@]}"; do
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
  study_one "$model" "$@" > "$OUT/$model.out" 2>&1 &
done
wait || true
for model in "${MODELS[@]}"; do
  if [[ ! -f "$OUT/$model/eval/test.beam5.json" ]]; then
    echo "study: $model did not finish: see $OUT/$model.out; run the script again to resume" >&2
    exit 1
  fi
done

runs=("${MODELS[@]/#/$OUT/}")
timed "comparing" seq2seq compare "${runs[@]}" --baseline "$OUT/bahdanau" --format markdown \
  --plot "$OUT/study.png" --curves "$OUT/curves.png" --plot-position "$OUT/position.png" > "$OUT/study.md.tmp"
mv "$OUT/study.md.tmp" "$OUT/study.md"
seq2seq compare "${runs[@]}" --baseline "$OUT/bahdanau"
echo "study: wrote $OUT/study.md, $OUT/study.png, $OUT/curves.png and $OUT/position.png" >&2
