"""Rationale metrics as the original Multimodal-CoT code computes them, on its raw texts (no normalisation).

Two of them, with different rules (amazon-science/mm-cot):

- `get_scores` (utils_evaluate.py → evaluations.py), the rationale scores of predictions_ans_test.json: the
  `rouge` 1.0.1 package's ROUGE-L F (`Rouge(metrics=["rouge-l"]).get_scores(target, prediction, avg=True)`,
  which splits sentences on "." and words on whitespace, no stemming, no lower-casing), nltk `sentence_bleu`
  BLEU-1/4 with no smoothing on `re.split(r"\\s|\\.")` tokens, and the embedding similarity. The target is
  stripped; ROUGE-L skips a pair whose prediction is "" or whose target is empty, BLEU skips only an empty
  target, similarity skips nothing. Each is a plain mean ×100.
- the per-epoch validation metric, `evaluate.load("rouge")` with `use_stemmer=True` (rouge-score's rougeL:
  lower-cased alphanumeric tokens, Porter stemming) after `"\\n".join(nltk.sent_tokenize(text.strip()))`, over
  every pair (an empty prediction scores 0); it picks the best epoch of a rationale run.

Offline choices, both exact for rougeL: `nltk.sent_tokenize` needs the punkt data (a download) but only moves the
whitespace between sentences to a newline, and rouge-score's tokenizer treats newlines as any other non-
alphanumeric character, so rougeL is the same with or without the split (rougeLsum would not be; the original
selects on rougeL). `evaluate` reports the 50th percentile of 1000 bootstrap resamples of the mean (unseeded
numpy); here the mean itself, which that percentile estimates (they differ by resampling noise only).

The texts compared are the original's: the raw generated text (the "Solution:" prefix and the literal "\\n"
sequences included) and the target the original trains on (mmcot_cli.data.prompts: "Solution: {solution}" for
QCM-E, "Solution: {lecture} {solution}." for QCM-LE, whitespace collapsed). The original decodes that target from
its token ids, which drops characters its vocabulary lacks; here it is the text before that round trip.
"""

from __future__ import annotations

import gc
import re
import warnings
from typing import Iterable, Iterator, Mapping, Sequence, TypeVar

from mmcot_cli.data.prompts import build_prompt
from mmcot_cli.errors import UnknownNameError, needs_library
from mmcot_cli.evaluation.similarity import similarity_scores

T = TypeVar("T")

# Pairs between two collections of the rouge package's garbage (below): ~120 kB of it a pair of ScienceQA-sized texts.
CYCLE_COLLECT_EVERY = 256


def collect_cycles(items: Iterable[T], every: int = CYCLE_COLLECT_EVERY) -> Iterator[T]:
    """`items`, with the garbage cycles made meanwhile collected every `every` items (and at the end).

    The rouge package's LCS (rouge_score._recon_lcs) leaves each pair's whole LCS table in a reference cycle (a
    nested function that calls itself), which only a full collection frees; the interpreter runs one more rarely
    the more objects are alive, so with a split's gold records held the tables piled up (1.4 GB at 40k pairs).
    The objects alive before are frozen (gc.freeze) meanwhile, so each collection scans only what is new."""
    gc.freeze()
    try:
        for i, item in enumerate(items, 1):
            yield item
            if i % every == 0:
                gc.collect()
    finally:
        gc.collect()
        gc.unfreeze()


# --rationale-ref → the prompt format whose target the original compares with
_TARGET_FORMATS = {"solution": "QCM-E", "lecture+solution": "QCM-LE"}


def original_target(record: Mapping, ref: str = "solution") -> str:
    """The decoded target text the original scores a rationale against (before its tokenizer round trip)."""
    if ref not in _TARGET_FORMATS:
        raise UnknownNameError("rationale reference", ref, list(_TARGET_FORMATS))
    return build_prompt({**record, "answer": record.get("answer") or 0}, _TARGET_FORMATS[ref])[1]


def get_scores_rouge_l_pair(prediction: str, target: str) -> float | None:
    """evaluations.score_rouge of one pair: the rouge package's rouge-l F, the stripped target passed first as the
    original does. None for a pair the original skips (prediction "" or empty target) and for one the package
    refuses (e.g. a prediction of only full stops; the original crashes there)."""
    with needs_library("rouge", "the original's ROUGE-L"):
        from rouge import Rouge

    target = target.strip()
    if prediction == "" or target == "":
        return None
    try:
        return float(Rouge(metrics=["rouge-l"]).get_scores(target, prediction, avg=True)["rouge-l"]["f"])
    except (ValueError, ZeroDivisionError):
        return None


def _bleu_tokens(text: str) -> list[str]:
    return [t for t in re.split(r"\s|\.", text) if t]


def _bleu(target: str, prediction: str, n: int) -> float:
    with needs_library("nltk", "the original's BLEU"):
        from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns for every pair with no n-gram overlap; the score is 0
        return float(sentence_bleu([_bleu_tokens(target)], _bleu_tokens(prediction), (1.0 / n,) * n))


def _mean100(values: list[float]) -> float | None:
    return 100.0 * sum(values) / len(values) if values else None


def original_get_scores(preds: Sequence[str], targets: Sequence[str], similarity_model=None) -> dict:
    """The original's get_scores rationale metrics (×100, unrounded) of raw (prediction, target) pairs:
    rouge_l, bleu_1, bleu_4 (and similarity with a model folder), with the numbers of pairs each averaged."""
    if len(preds) != len(targets):
        raise ValueError(f"original_get_scores: {len(preds)} predictions but {len(targets)} targets")
    pairs = [(p, t.strip()) for p, t in zip(preds, targets)]
    rouge = [get_scores_rouge_l_pair(p, t) for p, t in collect_cycles(pairs) if p != "" and t != ""]
    bleu_pairs = [(p, t) for p, t in pairs if t != ""]
    result = {
        "rouge_l": _mean100([r for r in rouge if r is not None]),
        "bleu_1": _mean100([_bleu(t, p, 1) for p, t in bleu_pairs]),
        "bleu_4": _mean100([_bleu(t, p, 4) for p, t in bleu_pairs]),
        "num_rouge_scored": sum(r is not None for r in rouge),
        "num_rouge_refused": sum(r is None for r in rouge),  # pairs the rouge package raises on
        "num_bleu_scored": len(bleu_pairs),
    }
    if similarity_model is not None:
        result["similarity"] = _mean100(similarity_scores([(p, t) for p, t in pairs], similarity_model))
    return result


_VALIDATION_SCORER = None


def validation_rouge_l_pair(prediction: str, target: str) -> float:
    """One pair's rougeL F of the original's validation metric (rouge-score, stemming, stripped texts; no sentence
    split: it cannot change rougeL, see the module docstring)."""
    global _VALIDATION_SCORER
    if _VALIDATION_SCORER is None:
        with needs_library("rouge-score", "the validation ROUGE-L"):
            from rouge_score import rouge_scorer

        _VALIDATION_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _VALIDATION_SCORER.score(target.strip(), prediction.strip())["rougeL"].fmeasure


def original_validation_rouge_l(preds: Sequence[str], targets: Sequence[str]) -> float | None:
    """The original's per-epoch validation rougeL ×100 (unrounded) over every (prediction, target) pair."""
    if len(preds) != len(targets):
        raise ValueError(f"original_validation_rouge_l: {len(preds)} predictions but {len(targets)} targets")
    return _mean100([validation_rouge_l_pair(p, t) for p, t in zip(preds, targets)])
