#!/usr/bin/env bash
# Multimodal-CoT on A-OKVQA (the paper's second benchmark): the official question files + COCO 2017 images,
# the same two stages as ScienceQA (QCM-E rationale → QCMG-A answer), FLAN-Alpaca-base + ViT features, one GPU.
#
# The rationale stage trains on each of the three crowd rationales as its own example (docs/FORMATS.md says
# why). val is the evaluation split (the test split has no answers: it is prepared predict-only and only
# exported for the leaderboard, https://leaderboard.allenai.org/aokvqa).
#
# Usage:  AOKVQA=datasets/aokvqa COCO=datasets/coco bash examples/aokvqa.sh
#   $AOKVQA holds aokvqa_v1p0_{train,val,test}.json (the official tar.gz, see allenai/aokvqa's README);
#   $COCO holds train2017/, val2017/, test2017/ (images.cocodataset.org zips).
#   Offline: export HF_HUB_OFFLINE=1 and set TEXT_MODEL / VIT_WEIGHTS to local directories/files.
set -euo pipefail

AOKVQA=${AOKVQA:?set AOKVQA to the folder with aokvqa_v1p0_<split>.json}
COCO=${COCO:?set COCO to the COCO 2017 image folder}
WORK=${WORK:-experiments/mmcot-aokvqa}
TEXT_MODEL=${TEXT_MODEL:-flan-alpaca-base}
DEVICE=${DEVICE:-cuda}
VIT_ARGS=()
[ -n "${VIT_WEIGHTS:-}" ] && VIT_ARGS=(--weights "$VIT_WEIGHTS")

RECIPES=$(dirname "$0")/recipes  # the hyperparameters; the paths stay here
COMMON=(--data "$WORK/data" --features "$WORK/features/vit" --text-model "$TEXT_MODEL")

mmcot prepare "$AOKVQA" --format aokvqa --images "$COCO" --out "$WORK/data"
mmcot extract --backbone vit --data "$WORK/data" --split train,val,test --out "$WORK/features/vit" \
  --device "$DEVICE" --batch-size 64 "${VIT_ARGS[@]}"

# Stage 1: rationale (targets: the crowd rationales, each one example).
mmcot train --config "$RECIPES/aokvqa-rationale.yaml" "${COMMON[@]}" --out "$WORK/rationale"
mmcot generate --run "$WORK/rationale" --data "$WORK/data" --split train,val,test --batch-size 32 \
  --device "$DEVICE"

# Stage 2: answer, on the stage-1 rationales (by question_id).
mmcot train --config "$RECIPES/aokvqa-answer.yaml" "${COMMON[@]}" --rationales "$WORK/rationale" --out "$WORK/answer"
mmcot generate --run "$WORK/answer" --data "$WORK/data" --split val,test --batch-size 32 --device "$DEVICE"

# val: accuracy, MC and DA accuracy as allenai/aokvqa's eval_predictions.py computes them, and the prediction file
# in its format {question_id: {"multiple_choice": ..., "direct_answer": ...}}. The model picks an option, so the
# direct answer is the chosen option's text (DA = that text against the ten direct answers).
mmcot score "$WORK/answer/preds-val.jsonl" --data "$WORK/data" --split val \
  --export-aokvqa "$WORK/predictions_val.json"
mmcot score "$WORK/rationale/preds-val.jsonl" --data "$WORK/data" --split val
# test: predict-only, exported for the leaderboard (the same format; direct answer = the chosen option's text).
mmcot score "$WORK/answer/preds-test.jsonl" --data "$WORK/data" --split test \
  --export-aokvqa "$WORK/predictions_test.json"

# Optional, Fine-tune-CoT "diverse reasoning": sample 4 more rationales per train question from the stage-1 run,
# keep those whose answer matches (needs a stage-1 format whose output states the answer, e.g.
# --prompt-format QCM-EA, or a teacher JSONL {qid, rationale, answer} from a larger model), and retrain stage 1:
#   mmcot generate --run "$WORK/rationale" --data "$WORK/data" --split train --num-samples 4 --temperature 0.7 \
#     --seed 0 --out "$WORK/samples-train.jsonl"
#   mmcot rationales filter "$WORK/samples-train.jsonl" --data "$WORK/data" --split train --out "$WORK/kept.jsonl"
#   mmcot train --config "$RECIPES/aokvqa-rationale.yaml" "${COMMON[@]}" --rationale-source "$WORK/kept.jsonl" --out "$WORK/rationale-ft"
