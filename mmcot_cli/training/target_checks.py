"""Training targets that teach nothing, said before any model is built: every target empty (a rationale stage on
records with no lecture or solution: the model would learn to write "Solution:") or every target the same text."""

from __future__ import annotations


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
