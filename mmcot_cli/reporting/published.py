"""Published numbers that reports and comparisons put beside a run's own, always marked as published.

ScienceQA test accuracy (%) by evaluate_acc.py category, from the sources named in each row, and the Multimodal-CoT
paper's ablations (its §3 tables) for the ablation recipe. No row here is computed by mmcot.

A format's published rows (the format registry's `published_rows` names a table of PUBLISHED) are shown only on
the benchmark's own split: the same split name, item count, set of qids (a fingerprint) and metadata (for
ScienceQA: its image/subject/grade profile), and a DATA_DIR not marked as carved, so never beside a subset, a
carve, a synthetic benchmark or other data built on the public qids. A-OKVQA has none: we found no published A-OKVQA row whose exact
setting (split, MC or DA, difficult-question filtering) we can cite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

# Column order of the rows below: the evaluate_acc.py keys.
KEYS = ("acc_natural", "acc_social", "acc_language", "acc_has_text", "acc_has_image", "acc_no_context",
        "acc_grade_1_6", "acc_grade_7_12", "acc_average")

_ROWS = (
    ("GPT-3.5 CoT (QCM→ALE, 2-shot)", (75.44, 70.87, 78.09, 74.68, 67.43, 79.93, 78.23, 69.68, 75.17),
     "ScienceQA README (CoT GPT-3, ALE)"),
    ("Multimodal-CoT Base (v1: UnifiedQA-base + DETR)", (87.52, 77.17, 85.82, 87.88, 82.90, 86.83, 84.65, 85.37,
                                                         84.91), "ScienceQA leaderboard"),
    ("Multimodal-CoT Large (v1)", (95.91, 82.00, 90.82, 95.26, 88.80, 92.89, 92.44, 90.31, 91.68),
     "ScienceQA leaderboard"),
    ("FLAN-Alpaca-large + ViT (released checkpoints)", (91.03, 93.70, 86.64, 90.13, 88.25, 89.48, 91.12, 89.26,
                                                        90.45), "third-party reproduction"),
    ("Human", (90.23, 84.97, 87.48, 89.60, 87.50, 88.10, 91.59, 82.42, 88.40), "ScienceQA README"),
)

# {name, source, acc_* keys} per published row.
SCIENCEQA_ROWS: tuple[dict, ...] = tuple({"name": name, "source": source, **dict(zip(KEYS, values))}
                                         for name, values, source in _ROWS)



def qid_fingerprint(qids) -> str:
    """sha256 of a split's qids, one a line, sorted by (length, text) (numeric order for ScienceQA's)."""
    ordered = sorted((str(q) for q in qids), key=lambda q: (len(q), q))
    return hashlib.sha256("\n".join(ordered).encode("utf-8")).hexdigest()


_SUBJECTS = frozenset({"natural science", "social science", "language science"})
_GRADES = frozenset(f"grade{g}" for g in range(1, 13))


def scienceqa_test_metadata(records: list[dict]) -> str | None:
    """Why these records' metadata is not ScienceQA's test split (None when it is): its 2,017 questions with an
    image (ScienceQA-IMG's test size; 2,224 without), every subject one of its three and every grade one of
    grade1 … grade12, all three subjects present, and grades on both sides of 6|7.
    The qids alone are public (pid_splits.json): data built on them with other fields are not the benchmark."""
    with_image = sum(1 for r in records if r.get("image"))
    subjects = {r.get("subject") for r in records}
    grades = {r.get("grade") for r in records}
    if with_image != 2017:
        return f"{with_image:,} of its questions have an image (ScienceQA's test split: 2,017)"
    for name, known in (("subject", _SUBJECTS), ("grade", _GRADES)):
        odd = [r.get(name) for r in records if r.get(name) not in known]
        if odd:
            return f"{len(odd):,} of its questions have a {name} ScienceQA does not use (e.g. {str(odd[0])[:40]!r})"
    if not _SUBJECTS <= subjects:
        return f"its subjects are {', '.join(sorted(map(str, subjects)))[:80]} (ScienceQA: natural, social, language)"
    low = {f"grade{g}" for g in range(1, 7)}
    if not (grades & low and grades - low):
        return "its grades do not span grades 1-6 and 7-12"
    return None


@dataclass(frozen=True)
class PublishedTable:
    """Published results on one split of one benchmark; rows are {name, source, <score key>: value}."""

    benchmark: str
    split: str
    num_items: int
    qids_sha256: str  # qid_fingerprint of the split
    rows: tuple[dict, ...]
    metadata_check: Callable[[list[dict]], str | None] | None = None  # why the fields are not the benchmark's

    def mismatch(self, split: str, records: list[dict]) -> str | None:
        """Why `records` are not the benchmark's own split (same name, size, qids and metadata), or None."""
        if split != self.split:
            return f"this is split {split!r}, not {self.split!r}"
        if len(records) != self.num_items:
            return f"it has {len(records):,} questions, not {self.num_items:,}"
        if qid_fingerprint(r["qid"] for r in records) != self.qids_sha256:
            return "its qids are not the benchmark's"
        return self.metadata_check(records) if self.metadata_check is not None else None

    def applies_to(self, split: str, records: list[dict]) -> bool:
        """True only for the benchmark's own split: same name, size, qids and metadata."""
        return self.mismatch(split, records) is None


# Published tables by the name the format registry gives (mmcot_cli.data.readers DataFormat.published_rows).
PUBLISHED: dict[str, PublishedTable] = {
    # ScienceQA's test split: the 4,241 qids of pid_splits.json "test" (the count evaluate_acc.py asserts).
    "scienceqa": PublishedTable("ScienceQA", "test", 4241,
                                "0f5a74307a43e65d82c65c05da8eff796120e47ac60423d69436508c42b4efb4", SCIENCEQA_ROWS,
                                scienceqa_test_metadata),
}


def published_for(name: str | None, split: str, records: list[dict],
                  manifest: dict | None = None) -> PublishedTable | None:
    """The published table of a format (None when it has none), if `split` is the benchmark's own; else None.
    A DATA_DIR whose manifest says its splits are not the benchmark's (a carve, Hub rows without qids) has none."""
    table = PUBLISHED.get(name) if name else None
    return table if table is not None and why_not_published(table, split, records, manifest) is None else None


def why_not_published(table: PublishedTable, split: str, records: list[dict], manifest: dict | None) -> str | None:
    """Why `table` is not shown beside runs on these data (None: it is)."""
    if manifest is not None and manifest.get("official_splits") is False:
        how = manifest.get("carved_from") and f"carved from split {manifest['carved_from']['split']!r}"
        return f"the data's splits are not {table.benchmark}'s own ({how or 'its rows carry no original qids'})"
    return table.mismatch(split, records)


# The paper's ablations on ScienceQA test (Multimodal-CoT v1, UnifiedQA-base): answer accuracy and, for the
# two-stage settings, the stage-1 rationale ROUGE-L. None where the paper gives no such number for the setting.
PAPER_ABLATIONS: dict[str, dict] = {
    "one_stage_qcm_a": {"accuracy": 80.40, "rouge_l": None},
    "one_stage_qcm_ra": {"accuracy": 67.86, "rouge_l": None},
    "two_stage_text": {"accuracy": 70.53, "rouge_l": 91.76},
    "two_stage_captions": {"accuracy": 71.12, "rouge_l": None},  # "captions add 0.59" to 70.53
    "two_stage_vision": {"accuracy": 84.91, "rouge_l": 96.97},
}
