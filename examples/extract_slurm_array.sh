#!/bin/bash
# Extract vision features with a SLURM job array: each array task takes a deterministic 1/N of the images
# (chunks with index % N == K), all tasks write into the same FEATURES_DIR on a shared filesystem, and a
# dependent job compacts the result. Any task can be resubmitted: finished chunks are skipped.
#
#   sbatch --array=0-7 examples/extract_slurm_array.sh            # 8 tasks (ids must start at 0)
#   sbatch --dependency=afterok:<jobid> --wrap "mmcot extract --merge features/vit"
#
# The store is readable before the merge (readers use the chunk files directly); merging only packs them into
# fewer, larger files. Environment overrides: DATA, OUT, BACKBONE, SPLITS, DEVICE.
#SBATCH --job-name=mmcot-extract
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
#SBATCH --output=logs/extract-%A_%a.out
set -euo pipefail

DATA=${DATA:-data}
OUT=${OUT:-features/vit}
BACKBONE=${BACKBONE:-vit}
SPLITS=${SPLITS:-train,val,test}
DEVICE=${DEVICE:-cuda}

: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-(N-1)}"
: "${SLURM_ARRAY_TASK_COUNT:?submit with sbatch --array=0-(N-1)}"

mmcot --quiet extract --backbone "$BACKBONE" --data "$DATA" --split "$SPLITS" --out "$OUT" \
    --device "$DEVICE" --workers "${SLURM_CPUS_PER_TASK:-4}" --batch-size 64 \
    --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" --json

# The task that finds the store complete compacts it (--merge refuses while chunks are missing, so a task that
# finishes early simply skips this; run `mmcot extract --merge "$OUT"` by hand or as a dependent job otherwise).
if python - "$OUT" <<'PY'
import sys
from mmcot_cli.features.store import open_store
sys.exit(0 if all(s["complete"] for s in open_store(sys.argv[1]).manifest["splits"].values()) else 1)
PY
then
    mmcot --quiet extract --merge "$OUT" --json || echo "merge skipped (another task is still writing or merging)" >&2
fi
