#!/usr/bin/env bash
# Multimodal-CoT Large on the real ScienceQA benchmark, with the reference's hyperparameters
# (amazon-science/mm-cot run scripts, see README): FLAN-Alpaca-large + ViT features + InstructBLIP captions,
# 4 GPUs data-parallel through Accelerate, stage 1 (rationale, QCM-E) then stage 2 (answer, QCMG-A).
# Generation and scoring follow the original's protocol too: --protocol original (free decoding, its random A–E
# fallback, its get_scores rationale metrics; docs/TRAINING.md "Protocols"). Training too: the
# recipes' `protocol: original` (fp32, random batches, pad-id labels in the loss, its validation rougeL).
#
# Fixed hand-off: stage 2 reads the stage-1 run's generated rationales BY QID (the original paired them by list
# position and called a missing main_central.py).
#
# Usage:  SQA=path/to/ScienceQA/data GPUS=4 bash examples/scienceqa_large.sh
#   $SQA holds problems.json + pid_splits.json (directly or in scienceqa/) and images/<qid>/image.png;
#   $CAPTIONS: the InstructBLIP captions the original's current scripts use (default $SQA/instruct_captions.json,
#   from amazon-science/mm-cot data/); the script stops if it is missing (ScienceQA's captions.json differs).
#   Multi-node: replace the launcher with `accelerate launch --num_machines N --machine_rank R
#   --main_process_ip HOST --num_processes TOTAL_GPUS -m mmcot_cli train ...`.
set -euo pipefail

SQA=${SQA:?set SQA to the ScienceQA data folder}
WORK=${WORK:-experiments/mmcot-large}
GPUS=${GPUS:-4}
TEXT_MODEL=${TEXT_MODEL:-flan-alpaca-large}       # declare-lab/flan-alpaca-large
CAPTIONS=${CAPTIONS:-$SQA/instruct_captions.json}
if [ ! -f "$CAPTIONS" ]; then
  echo "error: $CAPTIONS not found: the reference's current scripts use InstructBLIP captions" \
       "(data/instruct_captions.json in amazon-science/mm-cot); download it or set CAPTIONS=FILE" >&2
  exit 1
fi
VIT_ARGS=()
[ -n "${VIT_WEIGHTS:-}" ] && VIT_ARGS=(--weights "$VIT_WEIGHTS")
LAUNCH=(accelerate launch --num_processes "$GPUS" -m mmcot_cli)

# Reference: --epoch 50 --lr 5e-5 --input_len 512, seed 42, 4 GPUs, no --final_eval (best on val kept).
RECIPES=$(dirname "$0")/recipes  # the hyperparameters; the paths stay here
COMMON=(--data "$WORK/data" --features "$WORK/features/vit" --text-model "$TEXT_MODEL")

mmcot prepare "$SQA" --out "$WORK/data" --splits train,val,test --captions "$CAPTIONS"
# One process per GPU would also work (--shard K/N, see examples/ for the batch-queue scripts).
mmcot extract --backbone vit --data "$WORK/data" --split train,val,test --out "$WORK/features/vit" \
  --device cuda --batch-size 64 "${VIT_ARGS[@]}"

# Stage 1: rationale. Reference: --bs 2 --eval_bs 4 (per GPU) --output_len 512 --prompt_format QCM-E.
"${LAUNCH[@]}" train --config "$RECIPES/scienceqa-large-rationale.yaml" "${COMMON[@]}" --out "$WORK/rationale"
mmcot generate --config "$RECIPES/generate-original.yaml" --run "$WORK/rationale" --data "$WORK/data" \
  --split train,val,test --batch-size 16 --device cuda

# Stage 2: answer. Reference: --bs 4 --eval_bs 8 (per GPU) --output_len 64 --prompt_format QCMG-A.
# Train-split inputs use the gold rationale (the reference's choice); add --train-on generated to train on
# the stage-1 predictions instead.
"${LAUNCH[@]}" train --config "$RECIPES/scienceqa-large-answer.yaml" "${COMMON[@]}" --rationales "$WORK/rationale" \
  --out "$WORK/answer"
mmcot generate --config "$RECIPES/generate-original.yaml" --run "$WORK/answer" --data "$WORK/data" --split test \
  --device cuda

mmcot score --protocol original "$WORK/answer/preds-test.jsonl" --data "$WORK/data" --split test
mmcot score --protocol original "$WORK/rationale/preds-test.jsonl" --data "$WORK/data" --split test
