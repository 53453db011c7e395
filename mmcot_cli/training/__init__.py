"""Training: `mmcot train`'s config, inputs, the flat loop, checkpoints, the RUN_DIR checks and trackers.

Modules: config (TrainConfig: the one home of training defaults), inputs (records → prompts → tokenized examples,
store, run metadata), loop (the loop on Accelerate), validation (validation predictions and the
best-model metric), runtime (device, --precision, --deterministic, --compile),
loader (DataLoader workers, pinned async copies), guards (the NaN/inf guard, checked on the device), timing
(hooks a benchmark times the loop with), checkpoints (resume checkpoints, metrics.jsonl), run_dir (RUN_DIR checks),
tracking (`--report-to`), log_lines (the loss and epoch lines train prints, and the warnings
about targets that teach nothing).
May import: model, features, evaluation, runs, registry, data and the ground floor; never inference or above.
"""
