"""The synthetic benchmark: ScienceQA layout, determinism, balance, categories, and `mmcot prepare` reads it."""

import collections
import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from mmcot_cli.demo.synthetic import TASK_WEIGHTS, generate_synthetic
from mmcot_cli.errors import UnknownNameError, UsageError

FIELDS = {"question", "choices", "answer", "hint", "image", "task", "grade", "subject", "topic", "category", "skill",
          "lecture", "solution", "split"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("syn") / "bench"
    return out, generate_synthetic(out, n_problems=400, seed=7)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_layout_and_fields(bench):
    out, summary = bench
    problems = json.loads((out / "problems.json").read_text())
    splits = json.loads((out / "pid_splits.json").read_text())
    captions = json.loads((out / "captions.json").read_text())
    assert summary["count"] == len(problems) == 400
    assert list(problems) == [str(i) for i in range(1, 401)]
    assert captions["captions"] == {}  # withheld on purpose: a caption would leak the image to the text model
    for name in ("train", "val", "test", "trainval", "minitrain", "minival", "minitest"):
        assert splits[name], name
    assert sorted(splits["train"] + splits["val"] + splits["test"], key=int) == list(problems)
    assert splits["trainval"] == splits["train"] + splits["val"]
    assert set(splits["minitest"]) <= set(splits["test"])
    for qid, p in problems.items():
        assert set(p) == FIELDS, qid
        assert qid in splits[p["split"]]
        assert 2 <= len(p["choices"]) <= 5 and 0 <= p["answer"] < len(p["choices"])
        assert p["lecture"] and p["solution"]
        assert p["grade"].startswith("grade") and p["subject"].endswith("science")
        image = out / "images" / qid / "image.png"
        assert image.is_file() == (p["image"] == "image.png")
        if p["image"]:
            assert p["hint"] == ""  # image questions have no text context: the image is the only source
            with Image.open(image) as im:
                assert im.mode == "RGB" and im.size == (224, 224)


def test_categories_and_answer_balance(bench):
    out, summary = bench
    problems = json.loads((out / "problems.json").read_text())
    kinds = collections.Counter("IMG" if p["image"] else "TXT" if p["hint"] else "NO" for p in problems.values())
    assert kinds["IMG"] > 0.45 * 400 and kinds["TXT"] > 0.1 * 400 and kinds["NO"] > 0.05 * 400
    assert {p["subject"] for p in problems.values()} == {"natural science", "social science", "language science"}
    grades = {int(p["grade"][5:]) for p in problems.values()}
    assert min(grades) <= 6 < max(grades)  # both G1-6 and G7-12 populated
    # Options keep a fixed order per question, and on image questions every option is about equally likely,
    # so the question text alone cannot predict the answer.
    by_type = collections.defaultdict(list)
    for p in problems.values():
        if p["image"]:
            by_type[tuple(p["choices"])].append(p["answer"])
    assert len(by_type) == 4
    for choices, answers in by_type.items():
        counts = collections.Counter(answers)
        assert set(counts) == set(range(len(choices))), choices
        assert max(counts.values()) / len(answers) < 1 / len(choices) + 0.12, (choices, counts)
    # The solution's phrasing is a function of the question's wording, not of the image.
    phrasing = collections.defaultdict(set)
    for p in problems.values():
        if p["image"]:
            phrasing[p["question"]].add(p["solution"].split()[0])
    assert all(len(firsts) == 1 for firsts in phrasing.values()), phrasing
    assert sum(summary["tasks"].values()) == 400 and set(summary["tasks"]) == set(TASK_WEIGHTS)


def test_solution_states_the_visual_fact(bench):
    out, _ = bench
    problems = json.loads((out / "problems.json").read_text())
    for qid, p in problems.items():
        answer = p["choices"][p["answer"]]
        assert answer in p["solution"], qid
        if p["category"] == "Magnets" and p["image"]:
            assert " pole" in p["solution"]


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_synthetic(tmp_path / "a", n_problems=60, seed=3)
    b = generate_synthetic(tmp_path / "b", n_problems=60, seed=3)
    generate_synthetic(tmp_path / "c", n_problems=60, seed=4)
    assert a["tasks"] == b["tasks"]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    # Regenerating into the same folder replaces it (no stale images from the earlier set).
    generate_synthetic(tmp_path / "a", n_problems=30, seed=3)
    assert len(list((tmp_path / "a" / "images").iterdir())) < a["images"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_task_subset_and_bad_options(tmp_path):
    s = generate_synthetic(tmp_path / "m", n_problems=20, seed=0, tasks=("magnets",))
    assert s["tasks"] == {"magnets": 20} and s["images"] == 20
    with pytest.raises(UnknownNameError, match="magnet"):
        generate_synthetic(tmp_path / "x", n_problems=20, tasks=("magnet",))
    with pytest.raises(UsageError):
        generate_synthetic(tmp_path / "y", n_problems=2)
    (tmp_path / "notours").mkdir()
    (tmp_path / "notours" / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not a benchmark folder"):
        generate_synthetic(tmp_path / "notours", n_problems=10)
    assert (tmp_path / "notours" / "keep.txt").is_file()


def test_prepare_reads_it(bench, tmp_path):
    from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
    from mmcot_cli.data.records import load_records

    out, _ = bench
    prepare(PrepareConfig(source=str(out), out=str(tmp_path / "data")))
    records = load_records(tmp_path / "data", "test")
    problems = json.loads((out / "problems.json").read_text())
    assert [r["qid"] for r in records] == json.loads((out / "pid_splits.json").read_text())["test"]
    for r in records:
        assert r["caption"] == ""
        assert bool(r["image_paths"]) == bool(problems[r["qid"]]["image"])
