"""What `mmcot train` says while it runs: the loss every 25 optimizer steps (the divergence check's cadence, the only
time the host reads it), one line per epoch or validation, and the numbers those lines are made of."""

from __future__ import annotations


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def rate(samples: int, seconds: float) -> float | None:
    return round(samples / seconds, 3) if seconds > 0 else None


def step_line(stage: str, step: int, total: int, loss: float, lr: float) -> str:
    return f"train {stage}: step {step}/{total}  loss {loss:.4f}  lr {lr:.2e}"


def metrics_line(stage: str, row: dict) -> str:
    """One metrics.jsonl row as a line: epoch, step, mean train loss, validation metric (and whether best)."""
    parts = [f"train {stage}: epoch {row.get('epoch')}", f"step {row.get('step')}"]
    if row.get("train_loss") is not None:
        parts.append(f"train loss {row['train_loss']:.4f}")
    for key, value in row.items():
        if key.startswith("val_") and value is not None:
            parts.append(f"{key.replace('_', ' ', 1)} {value:.2f}{' (best so far)' if row.get('best') else ''}")
    if row.get("samples_per_s"):
        parts.append(f"{row['samples_per_s']:.1f} samples/s")
    return "  ".join(parts)
