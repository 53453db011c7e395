#!/bin/bash
# Extract vision features with N parallel processes on one machine (or several machines sharing a
# filesystem), then compact the store. Each process takes chunks with index % N == K; rerunning the script
# after a crash skips every finished chunk.
#
#   examples/extract_parallel.sh DATA_DIR FEATURES_DIR [BACKBONE] [N]
set -euo pipefail

DATA=${1:?usage: extract_parallel.sh DATA_DIR FEATURES_DIR [BACKBONE] [N]}
OUT=${2:?usage: extract_parallel.sh DATA_DIR FEATURES_DIR [BACKBONE] [N]}
BACKBONE=${3:-vit}
N=${4:-4}
SPLITS=${SPLITS:-train,val,test}
EXTRA=${EXTRA:-}   # e.g. EXTRA="--random-init" offline, or "--device cuda"

mkdir -p "$OUT.logs"
pids=()
for ((k = 0; k < N; k++)); do
    # one decoding worker each: N processes already use N cores
    mmcot --quiet extract --backbone "$BACKBONE" --data "$DATA" --split "$SPLITS" --out "$OUT" \
        --shard "$k/$N" --workers 1 $EXTRA > "$OUT.logs/shard-$k.log" 2>&1 &
    pids+=($!)
done

failed=0
for k in "${!pids[@]}"; do
    if ! wait "${pids[$k]}"; then
        echo "shard $k/$N failed: see $OUT.logs/shard-$k.log" >&2
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "rerun this script to finish the missing chunks" >&2
    exit 1
fi

mmcot extract --merge "$OUT" --json
