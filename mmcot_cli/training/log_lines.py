"""What `mmcot train` says while it runs: the loss every 25 optimizer steps (the divergence check's cadence, the only
time the host reads it), one line per epoch or validation, the numbers those lines are made of, and the warning
about targets that teach nothing."""

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
        if key.startswith("val_") and key != "val_examples" and value is not None:  # the metric, not the count
            parts.append(f"{key.replace('_', ' ', 1)} {value:.2f}{' (best so far)' if row.get('best') else ''}")
    if row.get("val_examples") is not None:
        parts.append(f"on {row['val_examples']} val examples")
    if row.get("samples_per_s"):
        parts.append(f"{row['samples_per_s']:.1f} samples/s")
    return "  ".join(parts)


# Training targets that teach nothing, said before any model is built: every target empty (a rationale stage on
# records with no lecture or solution: the model would learn to write "Solution:") or every target the same text.
def _content(target: str) -> str:
    """The target without its field labels ("Solution:", "Lecture:"): what is left to learn."""
    return " ".join(word for word in target.split() if not word.endswith(":"))


def degenerate_targets(pairs: list[tuple[str, str]], split: str) -> str | None:
    """One warning line when the (source, target) pairs' targets are all empty or all identical, else None."""
    targets = [target for _, target in pairs]
    if len(targets) < 2:
        return None
    if not any(_content(t) for t in targets):
        return (f"every {split} target ({len(targets)}) is empty apart from its labels ({targets[0].strip()!r}): the "
                f"records have no lecture/solution for this format, so the model can only learn to write that text")
    if len(set(targets)) == 1:
        return (f"every {split} target ({len(targets)}) is the same text ({targets[0][:60]!r}): the model can only "
                f"learn to copy it")
    return None
