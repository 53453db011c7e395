"""Hand-written run folders for the report/compare tests: a DATA_DIR with images, a text-only and a vision
two-stage answer run (each with its stage-1 rationale run), with known right and wrong answers.

Answers (test split, 8 items; qids 1–5 have an image, qid 5's is a decompression bomb): the text-only run is wrong
on qids 1, 2, 3, 5, the vision run on 3 and 8 only, so "corrected by vision" over all four text-only errors is
3 of 4 (qids 1, 2, 5).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from conftest import build_record
from PIL import Image

COLOURS = ["red", "blue", "green", "yellow"]
TEXT_WRONG = {"1", "2", "3", "5"}
VISION_WRONG = {"3", "8"}
EVIL = '<script>alert("x")</script> & "quotes"'


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A valid PNG header claiming width × height pixels, with almost no data (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
                     + chunk(b"IEND", b""))


def _record(qid: int, images: Path) -> dict:
    answer = qid % 4
    has_image = qid <= 5
    image_paths = []
    if has_image:
        folder = images / str(qid)
        folder.mkdir(parents=True, exist_ok=True)
        if qid == 5:
            bomb_png(folder / "image.png")
        else:
            Image.new("RGB", (640, 480), COLOURS[answer]).save(folder / "image.png")
        image_paths = [str(folder / "image.png")]
    return build_record(
        qid=str(qid), question=EVIL if qid == 1 else f"What colour is shape {qid}?",
        hint="" if has_image else f"The shape is {COLOURS[answer]}.", choices=COLOURS, answer=answer,
        lecture="Colours are seen with the eyes.", solution=f"The shape is {COLOURS[answer]}.",
        subject="natural science" if qid % 2 else "language science", grade="grade3" if qid < 6 else "grade8",
        topic="physics" if qid % 2 else "vocabulary", image="image.png" if has_image else None,
        image_paths=image_paths)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _run(root: Path, records: list[dict], wrong: set[str], vision: bool) -> Path:
    rationale_run, answer_run = root / "rationale", root / "answer"
    rationales = []
    answers = []
    for r in records:
        q, gold = r["qid"], r["answer"]
        guess = gold if q not in wrong else (gold + 1) % 4
        rationales.append({"qid": q, "prediction": f"Solution: The shape is {COLOURS[guess]}.", "stage": "rationale"})
        letter = "ABCD"[guess]
        answers.append({"qid": q, "prediction": f"The answer is ({letter}).", "stage": "answer",
                        "answer_letter": letter, "answer_index": guess, **({"constrained": True} if vision else {})})
    _write_jsonl(rationale_run / "preds-test.jsonl", rationales)
    _write_jsonl(answer_run / "preds-test.jsonl", answers)
    shape = [4, 8] if vision else None
    (rationale_run / "run_config.json").write_text(json.dumps(
        {"stage": "rationale", "prompt_format": "QCM-E", "feature_shape": shape, "rationales": None}))
    (answer_run / "run_config.json").write_text(json.dumps(
        {"stage": "answer", "prompt_format": "QCMG-A", "feature_shape": shape,
         "rationales": {"source": str(rationale_run), "train_on": "generated"}}))
    _write_jsonl(rationale_run / "metrics.jsonl", [
        {"epoch": e, "step": 3 * e, "train_loss": 3.0 / e, "val_rougeL": 40.0 + 10 * e, "lr": 1e-3 / e}
        for e in (1, 2, 3)])
    _write_jsonl(answer_run / "metrics.jsonl", [
        {"epoch": e, "step": 2 * e, "train_loss": 1.0 / e, "val_accuracy": 30.0 + 20 * e, "lr": 5e-4 / e}
        for e in (1, 2)])
    return answer_run


def make_runs(tmp: Path) -> dict:
    """{data, text, vision} paths."""
    records = [_record(i, tmp / "images") for i in range(1, 9)]
    _write_jsonl(tmp / "data" / "test.jsonl", records)
    return {"data": tmp / "data", "text": _run(tmp / "runs" / "text", records, TEXT_WRONG, vision=False),
            "vision": _run(tmp / "runs" / "vision", records, VISION_WRONG, vision=True)}
