"""Rationale metrics: ROUGE-L and BLEU-1/4 (×100) of generated rationales against gold text, all offline, and
optionally the original's embedding similarity (mmcot_cli.evaluation.similarity; needs a local model folder).

These are mmcot's own, normalised metrics: texts are normalised first (literal "\\n" as spaces, whitespace
collapsed, leading "Solution:" dropped) and ROUGE-L is rouge-score's (lower-cased, stemmed). The original does
neither: its get_scores uses the `rouge` package on the raw texts and its validation metric rouge-score on the raw
texts, each with its own skipping rules; those are mmcot_cli.evaluation.original_metrics, reported beside these.
A problem with several gold rationales (A-OKVQA's three crowd rationales)
has all of them as references: ROUGE-L and similarity take the best match (rouge-score's `score_multi` rule), BLEU
counts n-grams against all of them (its own multi-reference definition).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

from mmcot_cli import progress
from mmcot_cli.errors import UnknownNameError, needs_library
from mmcot_cli.evaluation.similarity import check_similarity_model, resolve_similarity_model, similarity_scores

RATIONALE_REFS = ("solution", "lecture+solution")
# One gold text, or several (A-OKVQA): what a generated rationale is compared with.
Reference = Union[str, tuple[str, ...]]


def normalize_rationale(text: str) -> str:
    """Text a rationale is compared on: literal "\\n" (how prompts encode newlines) as spaces, whitespace
    collapsed, and a leading "Solution:" (the stage-1 targets' prefix) stripped."""
    text = " ".join(text.replace("\\n", " ").split())
    if text.startswith("Solution:"):
        text = text[len("Solution:"):].strip()
    return text


def rationale_reference(record: dict, ref: str = "solution") -> Reference:
    """The gold text a generated rationale is compared with: `solution` (the QCM-E target; every one of a
    record's several gold `rationales`, as a tuple) or `lecture solution` (the QCM-LE target), normalised like
    the prediction. Empty (falsy) when there is none."""
    if ref == "solution":
        several = tuple(t for t in (normalize_rationale(x) for x in record.get("rationales") or []
                                    if isinstance(x, str)) if t)
        if len(several) > 1:
            return several
        text = record.get("solution") or ""
    elif ref == "lecture+solution":
        text = f"{record.get('lecture') or ''} {record.get('solution') or ''}"
    else:
        raise UnknownNameError("rationale reference", ref, list(RATIONALE_REFS))
    return normalize_rationale(text)


_ROUGE_SCORER = None


def _refs(ref: Reference) -> tuple[str, ...]:
    return (ref,) if isinstance(ref, str) else tuple(ref)


def _normalize_ref(ref: Reference) -> Reference:
    if isinstance(ref, str):
        return normalize_rationale(ref)
    return tuple(t for t in (normalize_rationale(r) for r in ref) if t)


def _rouge_pair(pred: str, ref: Reference) -> float:
    global _ROUGE_SCORER
    if _ROUGE_SCORER is None:
        with needs_library("rouge-score", "ROUGE-L of rationales"):
            from rouge_score import rouge_scorer

        _ROUGE_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return max(_ROUGE_SCORER.score(r, pred)["rougeL"].fmeasure for r in _refs(ref))


def _bleu_tokens(text: str) -> list[str]:
    # evaluations.py: split on whitespace and full stops, dropping empty pieces.
    return [t for t in re.split(r"\s|\.", text) if t]


def _bleu_pair(pred: str, ref: Reference, n: int) -> float:
    with needs_library("nltk", "BLEU of rationales"):
        from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        # Without smoothing nltk warns for every sentence with no n-gram overlap; the score is 0 by design.
        warnings.simplefilter("ignore")
        return float(sentence_bleu([_bleu_tokens(r) for r in _refs(ref)], _bleu_tokens(pred), (1.0 / n,) * n))


def _mean_percent(scores: list[float]) -> float | None:
    return 100.0 * sum(scores) / len(scores) if scores else None


def _check_lengths(name: str, preds: list[str], refs: Sequence[Reference]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"{name}: {len(preds)} predictions but {len(refs)} references")


@dataclass(frozen=True)
class MetricOptions:
    """Which optional rationale metrics are on: `similarity_model` (a local sentence-transformers folder, e.g.
    all-MiniLM-L6-v2) turns on the similarity metric."""

    similarity_model: Path | None = None

    @classmethod
    def from_flags(cls, similarity: bool, similarity_model: Path | None) -> "MetricOptions":
        """From the --similarity / --similarity-model settings score, report and compare each declare."""
        return cls(similarity_model=resolve_similarity_model(similarity, similarity_model))

    def check(self) -> None:
        """Fail before any work when an optional metric cannot run (library or model missing)."""
        if self.similarity_model is not None:
            check_similarity_model(self.similarity_model)


def _each(pair_score: Callable[[str, Reference], float], label: str):
    """A metric scored pair by pair (with a progress bar: ~5 ms a pair on CPU, a full split takes a while)."""
    def scores(pairs: Sequence[tuple[str, Reference]], _options: MetricOptions) -> list[float]:
        return [pair_score(p, r) for p, r in progress.track(pairs, f"rationale {label}")]
    return scores


def _similarity(pairs: Sequence[tuple[str, Reference]], options: MetricOptions) -> list[float]:
    flat = [(p, r) for p, ref in pairs for r in _refs(ref)]  # one cosine per reference, the best one kept
    cosines = iter(similarity_scores(flat, options.similarity_model))
    return [max(next(cosines) for _ in _refs(ref)) for _, ref in pairs]


@dataclass(frozen=True)
class RationaleMetric:
    """One rationale metric: its key in score objects (`rationale.<key>`), the label every table and page prints,
    its per-pair scores of a list of (prediction, reference) pairs (in [0, 1]; cosine in [-1, 1]; reported ×100),
    and whether the options turn it on (an optional metric's key is absent from results when it is off)."""

    key: str
    label: str
    scores: Callable[[Sequence[tuple[str, Reference]], MetricOptions], list[float]]
    enabled: Callable[[MetricOptions], bool] = lambda options: True


# The one table of rationale metrics: `mmcot score`, the report, compare and the demo loop over it (adding a
# metric here adds it everywhere).
RATIONALE_METRICS: tuple[RationaleMetric, ...] = (
    RationaleMetric("rouge_l", "ROUGE-L", _each(_rouge_pair, "ROUGE-L")),
    RationaleMetric("bleu_1", "BLEU-1", _each(lambda pred, ref: _bleu_pair(pred, ref, 1), "BLEU-1")),
    RationaleMetric("bleu_4", "BLEU-4", _each(lambda pred, ref: _bleu_pair(pred, ref, 4), "BLEU-4")),
    # The original's get_scores: cosine of all-MiniLM-L6-v2 embeddings (--similarity-model DIR).
    RationaleMetric("similarity", "Similarity", _similarity, enabled=lambda o: o.similarity_model is not None),
)


def enabled_metrics(options: MetricOptions) -> list[RationaleMetric]:
    return [m for m in RATIONALE_METRICS if m.enabled(options)]


def rouge_l(preds: list[str], refs: Sequence[Reference]) -> float | None:
    """mmcot's mean ROUGE-L F-measure ×100 (rouge-score with Porter stemming, like the original's validation metric,
    but on whatever texts the caller passes: rationale_metrics passes normalised ones).

    Pairs with an empty reference are skipped; an empty prediction scores 0 (the reference's evaluations.py
    skips those too, which would reward saying nothing). None when no pair has a reference."""
    _check_lengths("rouge_l", preds, refs)
    return _mean_percent([_rouge_pair(p, r) for p, r in zip(preds, refs) if any(x.strip() for x in _refs(r))])


def bleu(preds: list[str], refs: Sequence[Reference], n: int) -> float | None:
    """Mean sentence BLEU-n ×100 (nltk, uniform weights, no smoothing, as the reference). Empty references
    are skipped; None when none is left."""
    _check_lengths("bleu", preds, refs)
    return _mean_percent([_bleu_pair(p, r, n) for p, r in zip(preds, refs) if any(x.strip() for x in _refs(r))])


def score_pairs(pairs: Sequence[tuple[str, Reference]], options: MetricOptions = MetricOptions()
                ) -> list[dict[str, float]]:
    """Every enabled metric for each already-normalised (prediction, reference) pair, in [0, 1] (cosine [-1, 1])."""
    columns = {m.key: m.scores(pairs, options) for m in enabled_metrics(options)}
    return [{key: values[i] for key, values in columns.items()} for i in range(len(pairs))]


def mean_scores(scores: list[dict[str, float]], options: MetricOptions = MetricOptions()) -> dict[str, float | None]:
    """metric key → mean ×100 over per-pair scores (None for no pairs), rounded to 2 decimals."""
    return {m.key: _round(_mean_percent([s[m.key] for s in scores])) for m in enabled_metrics(options)}


def rationale_metrics(preds: list[str], refs: Sequence[Reference], options: MetricOptions = MetricOptions()) -> dict:
    """Every enabled metric of RATIONALE_METRICS (×100) over normalised texts, with the number of pairs scored."""
    _check_lengths("rationale_metrics", preds, refs)
    pairs = [(normalize_rationale(p), _normalize_ref(r)) for p, r in zip(preds, refs)]
    pairs = [(p, r) for p, r in pairs if r]
    return {"num_scored": len(pairs), "num_empty_ref": len(refs) - len(pairs),
            **mean_scores(score_pairs(pairs, options), options)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
