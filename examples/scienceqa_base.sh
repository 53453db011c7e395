#!/usr/bin/env bash
# Multimodal-CoT Base on the real ScienceQA benchmark, with the reference's hyperparameters
# (amazon-science/mm-cot run scripts, see README): FLAN-Alpaca-base + ViT features + InstructBLIP captions,
# stage 1 (rationale, QCM-E) then stage 2 (answer, QCMG-A), one GPU.
# The hyperparameters are recipes (examples/recipes/*.yaml, `--config`): the reference's values and
# `protocol: original` (fp32, random batches, pad-id labels in the loss, its validation rougeL, as the original trains). Generation and scoring follow the original's protocol too: --protocol original
# (free decoding, its random A–E fallback, its get_scores rationale metrics; docs/TRAINING.md "Protocols").
#
# Fixed hand-off: stage 2 reads the stage-1 run's generated rationales BY QID (the original paired them by list
# position, read them from another experiment folder, and called a missing main_central.py).
#
# Usage:  SQA=path/to/ScienceQA/data bash examples/scienceqa_base.sh
#   $SQA holds problems.json + pid_splits.json (directly or in scienceqa/) and images/<qid>/image.png;
#   $CAPTIONS: the InstructBLIP captions the original's current scripts use (default $SQA/instruct_captions.json,
#   from amazon-science/mm-cot data/); the script stops if it is missing (ScienceQA's captions.json differs).
#   Offline: export HF_HUB_OFFLINE=1 and set TEXT_MODEL / VIT_WEIGHTS to local directories/files.
set -euo pipefail

SQA=${SQA:?set SQA to the ScienceQA data folder}
WORK=${WORK:-experiments/mmcot-base}
TEXT_MODEL=${TEXT_MODEL:-flan-alpaca-base}        # declare-lab/flan-alpaca-base; or unifiedqa-t5-base (MMv1)
DEVICE=${DEVICE:-cuda}
CAPTIONS=${CAPTIONS:-$SQA/instruct_captions.json}
if [ ! -f "$CAPTIONS" ]; then
  echo "error: $CAPTIONS not found: the reference's current scripts use InstructBLIP captions" \
       "(data/instruct_captions.json in amazon-science/mm-cot); download it or set CAPTIONS=FILE" >&2
  exit 1
fi
VIT_ARGS=()
[ -n "${VIT_WEIGHTS:-}" ] && VIT_ARGS=(--weights "$VIT_WEIGHTS")

RECIPES=$(dirname "$0")/recipes
# The paths; the hyperparameters (--bs 8 --eval_bs 8 --epoch 20 --lr 8e-5 --input_len 512, seed 42) are in the recipes.
COMMON=(--data "$WORK/data" --features "$WORK/features/vit" --text-model "$TEXT_MODEL")

mmcot prepare "$SQA" --out "$WORK/data" --splits train,val,test --captions "$CAPTIONS"
mmcot extract --backbone vit --data "$WORK/data" --split train,val,test --out "$WORK/features/vit" \
  --device "$DEVICE" --batch-size 64 "${VIT_ARGS[@]}"

# Stage 1: rationale. Reference: --output_len 512 --prompt_format QCM-E --use_generate --final_eval
# (no per-epoch validation; the last epoch's model is kept) → --eval-every 0.
mmcot train --config "$RECIPES/scienceqa-base-rationale.yaml" "${COMMON[@]}" --out "$WORK/rationale"
mmcot generate --config "$RECIPES/generate-original.yaml" --run "$WORK/rationale" --data "$WORK/data" \
  --split train,val,test --device "$DEVICE"

# Stage 2: answer. Reference: --output_len 64 --prompt_format QCMG-A, validation every epoch, best accuracy kept.
# Train-split inputs use the gold rationale (the reference's choice); add --train-on generated to train on
# the stage-1 predictions instead (no train/test mismatch).
mmcot train --config "$RECIPES/scienceqa-base-answer.yaml" "${COMMON[@]}" --rationales "$WORK/rationale" \
  --out "$WORK/answer"
mmcot generate --config "$RECIPES/generate-original.yaml" --run "$WORK/answer" --data "$WORK/data" --split test \
  --device "$DEVICE"

mmcot score --protocol original "$WORK/answer/preds-test.jsonl" --data "$WORK/data" --split test
mmcot score --protocol original "$WORK/rationale/preds-test.jsonl" --data "$WORK/data" --split test
