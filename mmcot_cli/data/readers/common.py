"""What every non-ScienceQA reader shares: the DATA_DIR record builder, bad-item bookkeeping (--skip-bad), the
image policy for partial downloads, and the staged write of the split files and the manifest (all or none).

Records have the ScienceQA record schema (docs/FORMATS.md) so extract/train/generate/ask run unchanged; the
fields ScienceQA alone has (grade, topic, skill, task, …) are "". Extra keys: `format`, `groups` ({field: value},
what `mmcot score` reports per group), `rationales` (every gold rationale; `solution` holds the first), and the
A-OKVQA ones (`image_id`, `direct_answers`, `difficult_direct_answer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmcot_cli._version import __version__
from mmcot_cli.data.carve import Carve
from mmcot_cli.data.records import MAX_CHOICES, without_rationale, write_data_dir
from mmcot_cli.errors import DataError
from mmcot_cli.io import lone_surrogate


def make_record(fmt: str, qid: str, split: str, question: str, choices: Sequence[str], answer: int | None, *,
                context: str = "", lecture: str = "", solution: str = "", rationales: Sequence[str] = (),
                image: str | None = None, image_paths: Sequence[str] = (), groups: Mapping[str, str] | None = None,
                **extra: Any) -> dict:
    """A DATA_DIR record; `answer` None marks a predict-only item (no gold)."""
    record = {
        "qid": str(qid), "split": split, "question": question, "hint": context or "", "caption": "",
        "choices": list(choices), "answer": answer, "lecture": lecture, "solution": solution,
        "subject": "", "grade": "", "topic": "", "category": "", "skill": "", "task": "",
        "image": image, "image_paths": [str(p) for p in image_paths],
        "format": fmt, "groups": dict(groups or {}),
    }
    if rationales:
        record["rationales"] = list(rationales)
    record.update(extra)
    return record


def choices_error(choices: Any) -> str | None:
    if not isinstance(choices, list):
        return f"'choices' is {type(choices).__name__}, expected a list"
    if not 2 <= len(choices) <= MAX_CHOICES:
        return f"'choices' has {len(choices)} items, expected 2 to {MAX_CHOICES}"
    if not all(isinstance(c, str) and c.strip() for c in choices):
        return "'choices' must be non-empty strings"
    return None


def duplicate_choice(choices: Sequence[str]) -> str | None:
    """A choice given twice (ignoring case and spacing), or None: allowed, but worth a warning, since an answer
    written as text cannot tell the two options apart."""
    seen: set[str] = set()
    for choice in choices:
        key = " ".join(str(choice).split()).casefold()
        if key in seen:
            return choice
        seen.add(key)
    return None


def duplicate_choice_warning(where: str, qid: Any, choices: Sequence[str]) -> str | None:
    duplicate = duplicate_choice(choices)
    if duplicate is None:
        return None
    return f"{where}: id {qid}: choice {duplicate[:60]!r} is given twice (kept; the two options look the same)"


def text_error(value: Any) -> str | None:
    """Why a parsed item cannot be written as UTF-8 text (a lone surrogate escaped in the JSON), or None."""
    escape = lone_surrogate(value)
    return None if escape is None else f"lone surrogate {escape} in a string (not valid Unicode text)"


def answer_error(answer: Any, n_choices: int, name: str = "answer") -> str | None:
    if not isinstance(answer, int) or isinstance(answer, bool):
        return f"{name!r} is {answer!r}, expected an integer index"
    if not 0 <= answer < n_choices:
        return f"{name} index {answer} out of range for {n_choices} choices"
    return None


def string_list_error(value: Any, name: str) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"{name!r} must be a list of strings"
    return None


@dataclass
class SplitResult:
    records: list[dict] = field(default_factory=list)
    listed: int = 0  # items of this split in the source
    skipped: list[dict] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    # (qid, expected path) of images not on disk, settled by settle_images once the split is read
    pending_images: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def with_images(self) -> int:
        return sum(1 for r in self.records if r["image_paths"])

    @property
    def predict_only(self) -> bool:
        return bool(self.records) and all(r["answer"] is None for r in self.records)


class BadItems:
    """Collects per-item errors (each 'where: id: what'); fatal at `check()` unless skip_bad."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.errors: list[str] = []

    def add(self, res: SplitResult | None, where: str, qid: str | None, what: str) -> None:
        self.errors.append(f"{where}: {'id ' + str(qid) + ': ' if qid is not None else ''}{what}")
        if res is not None:
            res.skipped.append({"qid": qid, "error": what})

    def check(self, warnings: list[str], results: Mapping[str, SplitResult] | None = None, source: Any = "") -> None:
        """Raise the first error (unless skip_bad); with `results`, also when skipping left no problem at all."""
        if self.errors and self.skip_bad and results is not None and not any(r.records for r in results.values()):
            raise DataError(f"{source}: no usable problems (the first bad item: {self.errors[0]})")
        if self.errors and not self.skip_bad:
            more = (f" (and {len(self.errors) - 1} more bad item{'s' if len(self.errors) > 2 else ''}; "
                    "--skip-bad skips them)") if len(self.errors) > 1 else " (--skip-bad skips bad items)"
            raise DataError(self.errors[0] + more)
        warnings.extend(f"skipped: {e}" for e in self.errors)


def settle_images(split: str, res: SplitResult, bad: BadItems, where: str, warnings: list[str]) -> None:
    """ScienceQA's policy: a split with none of its images on disk (not downloaded) keeps its records without
    images and says so once; a split with some images on disk treats each missing one as a bad item."""
    if not res.pending_images:
        return
    if res.with_images == 0:
        res.missing_images = [qid for qid, _ in res.pending_images]
        warnings.append(f"split {split}: none of its {len(res.pending_images)} images are in {where}; records "
                        f"kept with image_paths [] (download that split's images to use them)")
        return
    for qid, expected in res.pending_images:
        bad.add(res, str(expected), qid, f"image of split {split} not found")
    drop = {qid for qid, _ in res.pending_images}
    res.records = [r for r in res.records if r["qid"] not in drop]


def write_outputs(out: Path, results: Mapping[str, SplitResult], manifest: dict, warnings: list[str],
                  carve: Carve | None = None) -> dict:
    """Stage every split and the manifest, rename them into `out` together (a write fault leaves none of them),
    and return the `mmcot prepare --json` summary."""
    manifest = {
        **manifest,
        "splits": {split: {"count": len(res.records), "with_images": res.with_images,
                           "predict_only": res.predict_only, "missing_problems": [],
                           "missing_images": res.missing_images, "skipped": res.skipped}
                   for split, res in results.items()},
        "created_by": f"mmcot {__version__} prepare",
    }
    write_data_dir(out, {split: res.records for split, res in results.items()}, manifest, carve)
    return {
        "out": str(out), "format": manifest["format"], "source": manifest["source"],
        "images_dir": manifest.get("images_dir"), "captions": None,
        "group_fields": manifest.get("group_fields", []),
        "splits": {split: {"count": len(res.records), "split_list": res.listed, "missing_problems": 0,
                           "with_images": res.with_images, "missing_images": len(res.missing_images),
                           "skipped": len(res.skipped), "predict_only": res.predict_only,
                           "without_rationale": without_rationale(res.records)}
                   for split, res in results.items()},
        "skipped": sum(len(r.skipped) for r in results.values()),
        "warnings": warnings,
    }
