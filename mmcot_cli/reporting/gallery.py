"""The report's error gallery (the paper's §3.2 analysis): wrong answers sampled with a seed, each with a
thumbnail of its image, question, options, generated vs gold rationale and ROUGE-L; with a text-only and a vision
run both given, the text-only run's errors and whether the vision run answered them correctly."""

from __future__ import annotations

import base64
import random
from typing import Callable

from mmcot_cli.data.images import ImageError, record_image, thumbnail_bytes

Warn = Callable[[str], None]
THUMBNAIL_SIDE = 192  # px; a 192 px JPEG of a ScienceQA image is 5–15 kB, so 50 items stay well under 1 MB


def pick_runs(runs: list) -> tuple[object | None, object | None]:
    """(run whose errors are sampled, run that may correct them). The paper samples the text-only baseline's
    errors and asks whether vision fixes them; without such a pair, the first run with answers alone."""
    answered = [r for r in runs if r.has_answers]
    vision = next((r for r in answered if r.vision is True), None)
    texts = [r for r in answered if r.vision is False]
    # Prefer the text-only run of the same pipeline (same prompt format) as the vision run.
    fmt = vision.prompt_format if vision else None
    text = next((r for r in texts if r.prompt_format == fmt), texts[0] if texts else None)
    if text is not None and vision is not None:
        return text, vision
    return (answered[0] if answered else None), None


def _thumbnail(record: dict, warn: Warn | None) -> tuple[str | None, str | None]:
    """(data URI, None) or (None, why there is no picture)."""
    path = record_image(record)
    if path is None:
        return None, "no image"
    try:
        data, _ = thumbnail_bytes(path, str(record["qid"]), THUMBNAIL_SIDE)
    except ImageError as e:
        if warn:
            warn(f"error gallery: {e}")
        return None, e.reason
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), None


def _side(run, qid: str, item: dict) -> dict:
    rouge = (run.rationale_by_category.get("per_qid_rouge_l") or {}).get(qid)
    return {"label": run.label, "pred_index": item["pred_index"], "correct": item["correct"],
            "status": item["status"], "rationale": run.rationales.get(qid), "rouge_l": rouge}


def build_gallery(runs: list, records: list[dict], n: int, seed: int, warn: Warn | None = None) -> dict:
    """{base, other, wrong (how many errors base made), items, corrected (k of n, with a vision run)}."""

    base, other = pick_runs(runs)
    if base is None or n == 0:
        return {"base": None, "other": None, "wrong": 0, "items": [], "corrected": None, "seed": seed}
    by_qid = {str(r["qid"]): r for r in records}
    base_items = {i["qid"]: i for i in base.score["items"]}
    other_items = {i["qid"]: i for i in other.score["items"]} if other else {}
    order = {str(r["qid"]): i for i, r in enumerate(records)}
    wrong = sorted((q for q, i in base_items.items() if not i["correct"]), key=order.__getitem__)
    chosen = sorted(random.Random(seed).sample(wrong, min(n, len(wrong))), key=order.__getitem__)
    items = []
    for qid in chosen:
        record = by_qid[qid]
        uri, no_image = _thumbnail(record, warn)
        items.append({
            "qid": qid, "question": record["question"], "hint": record.get("hint") or "",
            "choices": list(record["choices"]), "answer": record["answer"], "image": uri, "no_image": no_image,
            "gold_rationale": record.get("solution") or "",  # as written (line breaks kept for the page)
            "base": _side(base, qid, base_items[qid]),
            "other": _side(other, qid, other_items[qid]) if other else None,
        })
    corrected = None
    if other is not None:
        corrected = {"k": sum(1 for it in items if it["other"]["correct"]), "n": len(items)}
    return {"base": base.label, "other": other.label if other else None, "wrong": len(wrong), "items": items,
            "corrected": corrected, "seed": seed}
