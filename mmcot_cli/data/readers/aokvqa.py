"""A-OKVQA (allenai/aokvqa): the official `aokvqa_v1p0_{split}.json` lists and COCO 2017 images.

Each item: question_id, image_id (COCO id), question, choices (4), correct_choice_idx, direct_answers (10),
difficult_direct_answer, rationales (3). The test split has no correct_choice_idx / direct_answers / rationales:
it is prepared predict-only. Images: COCO_DIR/{split}2017/{image_id:012d}.jpg (`--images COCO_DIR`).
The context is empty (prompts say "N/A", as for ScienceQA questions without a hint); `solution` holds the first
crowd rationale and `rationales` all three (the rationale stage trains on each, docs/FORMATS.md says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmcot_cli.data.carve import Carve
from mmcot_cli.data.leakage import check_split_overlap
from mmcot_cli.data.readers.common import (
    BadItems,
    SplitResult,
    answer_error,
    choices_error,
    duplicate_choice_warning,
    make_record,
    settle_images,
    string_list_error,
    text_error,
    write_outputs,
)
from mmcot_cli.errors import DataError, UnknownNameError
from mmcot_cli.io import read_json
from mmcot_cli.progress import track

VERSION = "v1p0"
SPLITS = ("train", "val", "test")


def split_file(source: Path, split: str) -> Path:
    return source / f"aokvqa_{VERSION}_{split}.json"


def present_splits(source: Path) -> list[str]:
    """Splits with an official file in SRC (the three official ones first, then e.g. test_w_ans)."""
    found = [p.name[len(f"aokvqa_{VERSION}_"):-len(".json")] for p in sorted(source.glob(f"aokvqa_{VERSION}_*.json"))]
    return [s for s in SPLITS if s in found] + [s for s in found if s not in SPLITS]


def coco_image(coco_dir: Path, split: str, image_id: int) -> Path:
    """The official layout; A-OKVQA's train/val/test use COCO's train2017/val2017/test2017."""
    coco_split = split if split in SPLITS else "test"
    return coco_dir / f"{coco_split}2017" / f"{image_id:012d}.jpg"


def item_error(item: Any) -> str | None:
    """Why an item is unusable, or None. Answer fields are optional here (predict-only test split)."""
    if not isinstance(item, dict):
        return f"expected an object, got {type(item).__name__}"
    for name in ("question_id", "image_id", "question", "choices"):
        if name not in item:
            return f"missing field {name!r}"
    if not isinstance(item["question_id"], str) or not item["question_id"].strip():
        return "'question_id' must be a non-empty string"
    if not isinstance(item["image_id"], int) or isinstance(item["image_id"], bool) or item["image_id"] < 0:
        return f"'image_id' is {item['image_id']!r}, expected a COCO image id (integer)"
    if not isinstance(item["question"], str) or not item["question"].strip():
        return "'question' must be a non-empty string"
    err = choices_error(item["choices"])
    if err is None and item.get("correct_choice_idx") is not None:
        err = answer_error(item["correct_choice_idx"], len(item["choices"]), "correct_choice_idx")
    for name in ("direct_answers", "rationales"):
        if err is None and item.get(name) is not None:
            err = string_list_error(item[name], name)
    if err is None and not isinstance(item.get("difficult_direct_answer", False), bool):
        err = "'difficult_direct_answer' must be true or false"
    if err is None and item.get("correct_choice_idx") is not None and not item.get("direct_answers"):
        err = "has 'correct_choice_idx' but no 'direct_answers'"
    return err


def item_record(item: dict, split: str, image_paths: list[str]) -> dict:
    rationales = [r for r in item.get("rationales") or [] if r.strip()]
    difficult = bool(item.get("difficult_direct_answer", False))
    record = make_record(
        "aokvqa", item["question_id"], split, item["question"], item["choices"], item.get("correct_choice_idx"),
        solution=rationales[0] if rationales else "", rationales=rationales, image=f"{item['image_id']:012d}.jpg",
        image_paths=image_paths, groups={"difficult_direct_answer": str(difficult).lower()},
        image_id=item["image_id"], difficult_direct_answer=difficult)
    if item.get("direct_answers") is not None:
        record["direct_answers"] = list(item["direct_answers"])
    return record


def _read_split(source: Path, split: str, images: Path | None, bad: BadItems, seen: dict,
                warnings: list[str]) -> SplitResult:
    path = split_file(source, split)
    items = read_json(path, surrogates=True)  # an item with a lone surrogate is a bad item (--skip-bad skips it)
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of questions, got {type(items).__name__}")
    res = SplitResult(listed=len(items))
    for i, item in enumerate(track(items, f"checking {split}")):
        where = f"{path}: item {i}"
        qid = item.get("question_id") if isinstance(item, dict) else None
        err = item_error(item) or text_error(item)
        if err:
            bad.add(res, where, qid, err)
            continue
        if qid in seen:
            bad.add(res, where, qid, f"duplicate question_id in split {split} (first at {seen[qid]})")
            continue
        seen[qid] = where
        duplicate = duplicate_choice_warning(where, qid, item["choices"])
        if duplicate:
            warnings.append(duplicate)
        image_paths = []
        if images is not None:
            image = coco_image(images, split, item["image_id"])
            if image.is_file():
                image_paths = [str(image.resolve())]
            else:
                res.pending_images.append((qid, image))
        res.records.append(item_record(item, split, image_paths))
    answered = sum(r["answer"] is not None for r in res.records)
    if 0 < answered < len(res.records):
        for r in [r for r in res.records if r["answer"] is None]:
            bad.add(res, str(path), r["qid"], "no 'correct_choice_idx' (other items of this split have one)")
        res.records = [r for r in res.records if r["answer"] is not None]
    return res


def prepare_aokvqa(source: Path, out: Path, splits: tuple[str, ...] | None, images: Path | None,
                   skip_bad: bool, allow_overlap: bool = False, carve: Carve | None = None) -> dict:
    if not source.is_dir():
        raise DataError(f"{source}: not a directory (expected the folder holding aokvqa_{VERSION}_<split>.json)")
    present = present_splits(source)
    for split in splits or ():
        if split not in present:
            raise UnknownNameError(f"split (aokvqa_{VERSION}_<split>.json in {source})", split, present)
    wanted = tuple(splits or present)
    if not wanted:
        raise DataError(f"{source}: no aokvqa_{VERSION}_<split>.json file")
    if images is not None and not images.is_dir():
        raise DataError(f"{images}: COCO image folder not found")
    bad, warnings, seen = BadItems(skip_bad), [], {split: {} for split in wanted}
    if images is None:
        warnings.append("no --images COCO_DIR: records have no images (text-only)")
    results = {}
    for split in wanted:
        results[split] = _read_split(source, split, images, bad, seen[split], warnings)
        settle_images(split, results[split], bad, str(images), warnings)
    # a question_id in two splits is leakage (an error even with --skip-bad), unless --allow-overlap
    check_split_overlap({split: list(seen[split]) for split in wanted}, str(source), allow_overlap)
    bad.check(warnings, results, source)
    manifest = {"format": "aokvqa", "source": str(source.resolve()),
                "files": [str(split_file(source, s).resolve()) for s in wanted],
                "images_dir": str(images.resolve()) if images is not None else None,
                "group_fields": ["difficult_direct_answer"]}
    return write_outputs(out, results, manifest, warnings, carve)
