"""What an accuracy is worth: the chance baseline (a uniform guess among each item's own options), the
majority-class baseline (always the one option letter that is most often right on these items) and whether the
predictions collapsed to one answer (every answer the same letter: the model learnt the prior, not the task).
Shown beside accuracy by `score` and `report` in every format."""

from __future__ import annotations

from collections import Counter

from mmcot_cli.data.answers import OPTION_LETTERS

MIN_COLLAPSE = 3  # fewer answers than this prove nothing about a collapse


def baselines(records: list[dict]) -> dict:
    """{"chance", "majority" (percent, 2 decimals), "majority_letter"} over records that have an answer index."""
    scored = [r for r in records if r.get("answer") is not None and r.get("choices")]
    if not scored:
        return {"chance": None, "majority": None, "majority_letter": None}
    chance = sum(1 / len(r["choices"]) for r in scored) / len(scored)
    counts = Counter(r["answer"] for r in scored)
    index = max(sorted(counts), key=counts.__getitem__)  # a tie goes to the earlier letter
    hits = counts[index]
    return {"chance": round(100 * chance, 2), "majority": round(100 * hits / len(scored), 2),
            "majority_letter": _letter(index)}


def collapsed(indices: list[int | None]) -> dict | None:
    """{"letter", "count"} when every answer given (at least MIN_COLLAPSE) is the same option, else None."""
    given = [i for i in indices if i is not None]
    if len(given) < MIN_COLLAPSE or len(set(given)) != 1:
        return None
    return {"letter": _letter(given[0]), "count": len(given)}


def collapse_warning(collapse: dict, accuracy: float | None, base: dict) -> str:
    """The warning line for collapsed predictions, with the numbers that put the accuracy in its place."""
    numbers = [f"{name} {value:.2f} %" for name, value in (("accuracy", accuracy), ("majority-class baseline",
               base.get("majority")), ("chance", base.get("chance"))) if value is not None]
    return (f"every answer is ({collapse['letter']}): all {collapse['count']} predictions chose the same option"
            + (f" ({', '.join(numbers)})" if numbers else "") + ": the model answers by a prior, not by the question")


def _letter(index: int) -> str:
    return OPTION_LETTERS[index] if 0 <= index < len(OPTION_LETTERS) else str(index)
