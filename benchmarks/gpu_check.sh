#!/usr/bin/env bash
# Issue 16's GPU check: ONE command, from the repository root, on a machine with a CUDA GPU, using the source tree
# (no `pip install` of mmcot; `python3 -m mmcot_cli`, not the `mmcot` script):
#
#     bash benchmarks/gpu_check.sh                # results into $OUT (default: ./gpu-check-out)
#     bash benchmarks/gpu_check.sh --cpu-smoke    # every step, tiny and on CPU: checks this script, not the GPU
#
# Finishes within BUDGET seconds (default 470); every step has its own `timeout`, prints JSON lines as results
# arrive (also appended to $OUT/results.jsonl) and writes its files at once, so a failed or timed-out step loses
# nothing of the others. Files in $OUT (8): results.jsonl, tests-gpu.log, tests-suite.log, bench-base.json,
# bench-large.json, demo-1.json, demo-2.json, steps.log (stderr of the benchmarks and demos). Further results
# (the word-level-tokenizer and torch.compile runs) are only lines in results.jsonl.
#
# Steps, in priority order:
#   1. `pytest -m gpu` (train/generate/extract/ask on cuda, bf16, fp32 + fused AdamW, deterministic reruns and
#      resume bit-identical), then the suite `-m "not slow and not gpu"` in the background on the other cores with
#      the GPU hidden (CPU work; it must not disturb the benchmarks' timings); its log is collected at the end.
#   2. benchmarks/bench_train.py: FLAN-T5-base shape: stage 1 at batch 8, the original's way (fp32, padded to
#      512/512) vs mmcot's batches (bare loop) vs `mmcot train`; batch 32 (the kernel ceiling at 512/512 in bf16,
#      and mmcot's batches); stage 2 at batch 8 (512/64); then bf16 vs fp32, fused vs foreach AdamW, SDPA vs eager,
#      token-sized batches and deterministic mode at batch 8. Then the FLAN-T5-large shape at batch 8. A CUDA
#      out-of-memory is recorded per variant.
#   3. `mmcot demo` twice with the same seed on cuda (deterministic training), side by side, and a diff of the two
#      score objects; each timed.
#   4. With time left: base stage 1 again with the word-level tokenizer (bench_train.py's docstring: the two
#      tokenizers' lengths bracket FLAN-T5's), then torch.compile (bare loop and `mmcot train`, base, batch 8);
#      both only as lines in results.jsonl. Then benchmarks/bench_numerics.py on this machine's CPU (one round):
#      its portable-kernel weights hash beside the README's shows whether another CPU computes the same bits.
#
# Python packages it needs beyond torch, transformers, accelerate, timm, safetensors, pluggy, rich, pytest (and
# what those bring: numpy, tokenizers, pillow, pyyaml, tqdm, regex):
#   - step 2 (bench_train.py): none.
#   - steps 1 and 3 (the CLI, scoring, the suite): typer>=0.29 with pydantic (pydantic-core, annotated-types,
#     typing-inspection, typing-extensions>=4.16), rouge-score (absl-py, six), nltk (joblib, click), jsonlines,
#     open_clip_torch (ftfy, wcwidth), plus sentencepiece and protobuf (UnifiedQA-style tokenizers in the suite),
#     matplotlib (report charts), pytest-timeout (the suite's per-test timeout), tensorboard (a tracker test).
# Step 0 below prints which of them import, so a missing one explains a failed step.

set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SMOKE=0
[ "${1:-}" = "--cpu-smoke" ] && SMOKE=1
export PYTHONPATH="$ROOT:$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
BUDGET=${BUDGET:-470}
START=$(date +%s)
PY=${PYTHON:-python3}

left() { echo $((BUDGET - ($(date +%s) - START))); }
emit() { echo "$1" | tee -a "$OUT/results.jsonl"; }
# json_lines CMD...: CMD's stdout (JSON lines) shown and appended to results.jsonl, its stderr to steps.log.
json_lines() { "$@" 2>> "$OUT/steps.log" | tee -a "$OUT/results.jsonl"; return "${PIPESTATUS[0]}"; }
export -f json_lines
export OUT

# run_step NAME LIMIT_S CMD...: at most LIMIT_S (and never past the budget); one JSON status line.
run_step() {
    local name=$1 limit=$2
    shift 2
    local room=$(($(left) - 5))
    [ "$limit" -gt "$room" ] && limit=$room
    if [ "$limit" -lt 20 ]; then
        emit "{\"step\": \"$name\", \"skipped\": \"out of time\", \"elapsed_s\": $(($(date +%s) - START))}"
        return 0
    fi
    local t0
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    emit "{\"step\": \"$name\", \"rc\": $rc, \"timed_out\": $([ $rc -eq 124 ] || [ $rc -eq 137 ] && echo true || echo false), \"seconds\": $(($(date +%s) - t0)), \"limit_s\": $limit, \"elapsed_s\": $(($(date +%s) - START))}"
}

# --------------------------------------------------------------------------------------------- 0. environment
emit "$($PY - <<'EOF'
import importlib, json, platform, os
mods = ["torch", "transformers", "accelerate", "timm", "safetensors", "pluggy", "rich", "pytest", "typer", "pydantic",
        "rouge_score", "nltk", "jsonlines", "open_clip", "sentencepiece", "google.protobuf", "matplotlib",
        "pytest_timeout", "tensorboard"]
found = {}
for m in mods:
    try:
        found[m] = getattr(importlib.import_module(m), "__version__", "yes")
    except Exception as e:
        found[m] = f"MISSING ({type(e).__name__})"
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
try:  # does this transformers run T5 attention through SDPA (position bias as an additive mask)?
    from transformers.models.t5.modeling_t5 import T5PreTrainedModel
    t5_sdpa = bool(getattr(T5PreTrainedModel, "_supports_sdpa", False))
except Exception as e:
    t5_sdpa = f"unknown ({type(e).__name__})"
print(json.dumps({"step": "environment", "python": platform.python_version(), "gpu": gpu,
                  "cpus": os.cpu_count(), "t5_supports_sdpa": t5_sdpa, "modules": found}))
EOF
)"
emit "$($PY - <<'EOF'
import json
try:  # the source tree, not an installed copy; built-in backbones registered in code (no entry points needed)
    import mmcot_cli, mmcot_cli.training.loop
    from mmcot_cli.registry.manager import text_backbones, vision_backbones
    print(json.dumps({"step": "source-tree", "mmcot_cli": mmcot_cli.__file__, "text": sorted(text_backbones()),
                      "vision": sorted(vision_backbones())}))
except Exception as e:
    print(json.dumps({"step": "source-tree", "error": f"{type(e).__name__}: {e}"}))
EOF
)"

if [ $SMOKE = 1 ]; then
    DEVICE=cpu; SUITE=(tests/test_layout.py tests/test_train_runtime.py -k "precision or token")
    BENCH_BASE=(--device cpu --shape tiny --warmup 1 --steps 1 --profile-steps 1 --threads 2
                --run rationale:2:original,bare,train --run rationale:4:bare-padded,bare,train
                --run answer:2:original,bare,train
                --run rationale:2:bare-fp32,bare-unfused,bare-eager,bare-tokens,train-tokens,bare-deterministic)
    BENCH_LARGE=(--device cpu --shape tiny --warmup 1 --steps 1 --profile-steps 1 --threads 2 --run rationale:2:original,bare,train)
    BENCH_WORDS=(--device cpu --shape tiny --warmup 1 --steps 1 --profile-steps 1 --threads 2 --tokenizer scratch
                 --run rationale:2:original,bare,train)
    BENCH_COMPILE=(--device cpu --shape tiny --warmup 1 --steps 1 --profile-steps 1 --threads 2 --run answer:2:bare-compile)
    DEMO=(--tiny --device cpu)
    T_GPU=120; T_BASE=400; T_LARGE=120; T_WORDS=120; T_DEMO=300; T_COMPILE=150
else
    DEVICE=cuda; SUITE=(-m "not slow and not gpu")
    BENCH_BASE=(--device cuda --shape base
                --run rationale:8:original,bare,train --run rationale:32:bare-padded,bare,train
                --run answer:8:original,bare,train
                --run rationale:8:bare-fp32,bare-unfused,bare-eager,bare-tokens,train-tokens,bare-deterministic)
    BENCH_LARGE=(--device cuda --shape large --run rationale:8:original,bare,train)
    BENCH_WORDS=(--device cuda --shape base --tokenizer scratch --run rationale:8:original,bare,train)
    BENCH_COMPILE=(--device cuda --shape base --run rationale:8:bare,bare-compile,train-compile)
    DEMO=(--device cuda)
    # Limits sum to more than the budget on purpose: a step that finishes early leaves its time to the next, and
    # run_step never lets one run past the budget.
    T_GPU=110; T_BASE=125; T_LARGE=75; T_DEMO=300; T_WORDS=45; T_COMPILE=150
fi

# --------------------------------------------------------------------------------------------- 1. tests
CORES=$(nproc 2>/dev/null || echo 2)
PIN=()
if command -v taskset >/dev/null && [ "$CORES" -ge 8 ]; then PIN=(taskset -c "4-$((CORES - 1))"); fi
( CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 timeout --kill-after=10 "$(left)" "${PIN[@]}" $PY -m pytest -q -p no:cacheprovider \
      "${SUITE[@]}" > "$OUT/tests-suite.log" 2>&1; echo "exit code $?" >> "$OUT/tests-suite.log" ) &
SUITE_PID=$!
run_step tests-gpu "$T_GPU" bash -c '"$@" > "$OUT/tests-gpu.log" 2>&1' _ $PY -m pytest -v -p no:cacheprovider -m gpu -rs \
    --timeout 90 tests/test_gpu.py
emit "{\"step\": \"tests-gpu-summary\", \"line\": \"$(tail -1 "$OUT/tests-gpu.log" | tr -d '"\\')\"}"

# --------------------------------------------------------------------------------------------- 2. benchmarks
run_step bench-base "$T_BASE" bash -c 'json_lines "$@"' _ $PY benchmarks/bench_train.py "${BENCH_BASE[@]}" \
    --work "$WORK/bench-base" --out "$OUT/bench-base.json"
run_step bench-large "$T_LARGE" bash -c 'json_lines "$@"' _ $PY benchmarks/bench_train.py "${BENCH_LARGE[@]}" \
    --work "$WORK/bench-large" --out "$OUT/bench-large.json"

# --------------------------------------------------------------------------------------------- 3. demo twice
demo() {  # demo N: one full demo run, its --json summary into $OUT/demo-N.json
    $PY -m mmcot_cli -q demo "${DEMO[@]}" --seed 0 --out "$WORK/demo-$1" --json > "$OUT/demo-$1.json" 2>> "$OUT/steps.log"
}
demo_pair() { demo 1 & local a=$!; demo 2; local rc2=$?; wait $a; local rc1=$?; return $((rc1 | rc2)); }
run_step demo-twice "$T_DEMO" bash -c "$(declare -f demo demo_pair); PY=$PY; OUT=$OUT; WORK=$WORK; DEMO=(${DEMO[*]}); demo_pair"
emit "$($PY - "$OUT" "$WORK" <<'EOF'
import hashlib, json, sys
from pathlib import Path
out_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
out = {"step": "demo-diff"}
try:
    runs = [json.loads((out_dir / f"demo-{i}.json").read_text()) for i in (1, 2)]
except Exception as e:
    print(json.dumps({**out, "error": f"{type(e).__name__}: {e}"}))
    sys.exit()
keys = [k for k in ("multimodal", "text_only", "rationale_image_questions") if k in runs[0]]
paths = ("rationale_predictions", "predictions", "data")  # differ by folder only
scores = [{k: ({f: v for f, v in r[k].items() if f not in paths} if k != "rationale_image_questions" else r[k])
           for k in keys} for r in runs]
out["scores_identical"] = scores[0] == scores[1]
out["scores_differ_in"] = sorted(k for k in keys if scores[0][k] != scores[1][k])
def digests(root: Path, pattern: str) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob(pattern))}
for what, pattern in (("predictions", "runs/*/*/preds-*.jsonl"), ("weights", "runs/*/*/model/*.safetensors")):
    a, b = digests(work / "demo-1", pattern), digests(work / "demo-2", pattern)
    out[f"{what}_identical"] = bool(a) and a == b
    out[f"{what}_files"] = len(a)
    out[f"{what}_differ"] = sorted(k for k in a if a.get(k) != b.get(k))
for i, r in enumerate(runs, 1):
    out[f"run{i}"] = {m: {c: r[m].get(c) for c in ("acc_has_text", "acc_has_image", "acc_no_context", "acc_average")}
                      for m in ("multimodal", "text_only") if m in r}
    out[f"run{i}_seconds"] = r.get("seconds", {}).get("total")
print(json.dumps(out))
EOF
)"

# --------------------------------------------------------------------------------------------- 4. with time left
run_step bench-words "$T_WORDS" bash -c 'json_lines "$@"' _ $PY benchmarks/bench_train.py "${BENCH_WORDS[@]}" \
    --work "$WORK/bench-words"
if [ "$(left)" -ge 90 ]; then
    run_step bench-compile "$T_COMPILE" bash -c 'json_lines "$@"' _ $PY benchmarks/bench_train.py \
        "${BENCH_COMPILE[@]}" --work "$WORK/bench-compile"
else
    emit "{\"step\": \"bench-compile\", \"skipped\": \"out of time\", \"elapsed_s\": $(($(date +%s) - START))}"
fi
run_step bench-numerics 90 bash -c 'json_lines "$@"' _ $PY benchmarks/bench_numerics.py --rounds 1

# --------------------------------------------------------------------------------------------- the suite's result
while kill -0 $SUITE_PID 2>/dev/null && [ "$(left)" -gt 3 ]; do sleep 1; done
if kill -0 $SUITE_PID 2>/dev/null; then
    echo "stopped: out of time" >> "$OUT/tests-suite.log"  # its own timeout (the budget left at its start) ends it
fi
emit "{\"step\": \"tests-suite-summary\", \"line\": \"$(grep -E 'passed|failed|error' "$OUT/tests-suite.log" | tail -1 | tr -d '"\\')\", \"elapsed_s\": $(($(date +%s) - START))}"
rm -rf "$WORK"
