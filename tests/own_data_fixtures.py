"""Fixtures for the bring-your-own-data tests: the ScienceQA sample re-expressed as A-OKVQA files (with a COCO-style
image folder) and as generic JSONL. Images are small solid-colour PNG/JPEG files made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

COLOURS = [(220, 40, 40), (240, 200, 30), (40, 170, 60), (40, 80, 220)]
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "scienceqa-sample"


@pytest.fixture(scope="session")
def sqa_source(tmp_path_factory) -> Path:
    """ScienceQA-layout problems to re-express: the real sample (../shared/scienceqa-sample) where present, else a
    small synthetic benchmark (mmcot_cli.demo.synthetic), so these tests never skip."""
    if (SAMPLE / "problems.json").is_file():
        return SAMPLE
    from mmcot_cli.demo.synthetic import generate_synthetic

    out = tmp_path_factory.mktemp("synthetic") / "sqa"
    generate_synthetic(out, n_problems=60, seed=0)
    return out


def sample_problems(sample_dir: Path, per_split: int) -> dict[str, list[tuple[str, dict]]]:
    """The first `per_split` problems of each split (in pid_splits order) that exist in problems.json."""
    problems = json.loads((sample_dir / "problems.json").read_text())
    splits = json.loads((sample_dir / "pid_splits.json").read_text())
    return {s: [(q, problems[q]) for q in splits[s] if q in problems][:per_split] for s in ("train", "val", "test")}


def _image(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), COLOURS[index % len(COLOURS)]).save(path)


def write_aokvqa(sample_dir: Path, src: Path, coco: Path, per_split: int = 6) -> dict[str, list[dict]]:
    """aokvqa_v1p0_{train,val,test}.json + coco/{split}2017/{image_id:012d}.jpg; test without answers.
    Direct answers: the correct choice 4 times, the next choice twice (DA 2/3 when chosen), then "unsure"."""
    src.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, items in sample_problems(sample_dir, per_split).items():
        rows = []
        for i, (qid, p) in enumerate(items):
            image_id = int(qid)
            row = {"split": split, "image_id": image_id, "question_id": f"aok{qid}", "question": p["question"],
                   "choices": p["choices"], "difficult_direct_answer": i % 3 == 2}
            if split != "test":
                nxt = p["choices"][(p["answer"] + 1) % len(p["choices"])]
                row.update(correct_choice_idx=p["answer"],
                           direct_answers=[p["choices"][p["answer"]]] * 4 + [nxt] * 2 + ["unsure"] * 4,
                           rationales=[f"{p['solution']} (crowd {k})" if p["solution"] else f"Because {k}."
                                       for k in range(3)])
            rows.append(row)
            _image(coco / f"{split}2017" / f"{image_id:012d}.jpg", i)
        (src / f"aokvqa_v1p0_{split}.json").write_text(json.dumps(rows))
        out[split] = rows
    return out


def write_jsonl(sample_dir: Path, path: Path, per_split: int = 6) -> list[dict]:
    """One generic JSONL file for all splits, images in path.parent/images/ (relative paths); test predict-only."""
    rows = []
    for split, items in sample_problems(sample_dir, per_split).items():
        for i, (qid, p) in enumerate(items):
            row = {"id": f"j{qid}", "split": split, "question": p["question"], "choices": p["choices"],
                   "context": p["hint"], "subject": p["subject"], "category": p["category"]}
            if split != "test":
                row["answer"] = p["answer"]
            if i % 2 == 0:
                row["rationale"] = p["solution"] or "No reason given."
            else:
                row.update(lecture=p["lecture"], solution=p["solution"])
            if i % 3 != 1:
                row["image"] = f"images/{qid}.png"
                _image(path.parent / "images" / f"{qid}.png", i)
            rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
