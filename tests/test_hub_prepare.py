"""`mmcot prepare` on ScienceQA as the Hugging Face Hub serves it (mmcot_cli.data.readers.hub): parquet files in the
Hub's schema, built here with `datasets` and read back through the same code path as a Hub id (a cached snapshot,
HF_HUB_OFFLINE=1), a local folder, and the lmms-lab config layout; plus --problems FILE and images by qid."""

import io
import json
import os
from pathlib import Path

import pytest
from hub_cache import populate

from mmcot_cli.data.records import load_manifest, load_records

REPO = "derek-thomas/ScienceQA"


def _png(color) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _problem(i, split, image=False, question=None):
    return {"question": question or f"Question {i}?", "choices": ["yes", "no", "maybe"], "answer": i % 3,
            "hint": f"hint {i}" if i % 2 else "", "image": "image.png" if image else None, "task": "closed choice",
            "grade": f"grade{1 + i % 12}", "subject": ("natural science", "social science", "language science")[i % 3],
            "topic": "physics", "category": f"cat{i % 4}", "skill": "s", "lecture": f"lecture {i}",
            "solution": f"solution {i}", "split": split}


# qid → problem: as problems.json; qids 10 and 11 share their text and metadata (differ only by image colour).
PROBLEMS = {str(q): _problem(q, s, image=q % 2 == 0) for q, s in
            [(1, "train"), (2, "train"), (3, "train"), (4, "val"), (5, "val"), (6, "test"), (7, "test"), (8, "test")]}
PROBLEMS["10"] = _problem(10, "test", image=True, question="Twin?")
PROBLEMS["11"] = dict(PROBLEMS["10"])


def write_hub_parquet(folder: Path, problems=PROBLEMS, prefix="data", order=None) -> Path:
    """The Hub files: <prefix>/<split>-00000-of-00001.parquet, rows in problems order (or `order` of qids)."""
    import datasets

    features = datasets.Features({
        "image": datasets.Image(), "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("int8"),
        **{name: datasets.Value("string") for name in ("hint", "task", "grade", "subject", "topic", "category",
                                                        "skill", "lecture", "solution")}})
    by_split: dict[str, list[dict]] = {}
    for qid in order or problems:
        p = problems[qid]
        row = {k: v for k, v in p.items() if k not in ("split", "image")}
        row["image"] = {"bytes": _png((int(qid) * 20, 0, 0)), "path": None} if p["image"] else None
        by_split.setdefault({"val": "validation"}.get(p["split"], p["split"]), []).append(row)
    (folder / prefix).mkdir(parents=True, exist_ok=True)
    for split, rows in by_split.items():
        ds = datasets.Dataset.from_list(rows, features=features)
        ds.to_parquet(str(folder / prefix / f"{split}-00000-of-00001.parquet"))
    return folder


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """An empty HF cache for hub and datasets (offline)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return tmp_path


def _cache_snapshot(cache: Path, folder: Path) -> None:
    files = {str(f.relative_to(folder)): f for f in folder.rglob("*.parquet")}
    storage = populate(cache, REPO, files)
    os.rename(storage, cache / ("datasets--" + REPO.replace("/", "--")))


def test_hub_id_from_the_cache_writes_records_images_once_and_numbers_rows(cli, hub_env):
    _cache_snapshot(hub_env / "hub", write_hub_parquet(hub_env / "files"))
    out = hub_env / "data"
    result = cli("prepare", REPO, "--out", out)
    assert result.exit_code == 0, result.output
    assert "row-number" in result.stderr or "numbered <split>-<row>" in result.stderr
    assert sorted(p.stem for p in out.glob("*.jsonl")) == ["test", "train", "val"]  # validation → val
    test = load_records(out, "test")
    assert [r["qid"] for r in test] == ["test-0", "test-1", "test-2", "test-3", "test-4"]
    assert test[0]["subject"] == PROBLEMS["6"]["subject"] and test[0]["grade"] == PROBLEMS["6"]["grade"]
    assert test[0]["answer"] == PROBLEMS["6"]["answer"] and test[0]["lecture"] == "lecture 6"
    with_image = [r for r in test if r["image_paths"]]
    assert len(with_image) == 4  # 6, 8, 10, 11
    for r in with_image:
        path = Path(r["image_paths"][0])
        assert path.is_file() and path.parent.name == r["qid"] and path.read_bytes()[:4] == b"\x89PNG"
    manifest = load_manifest(out)
    assert manifest["format"] == "hub" and manifest["qids"] == "row-number" and manifest["official_splits"] is False
    assert not list(out.glob(".images.*"))


def test_problems_file_recovers_the_original_qids_by_content(cli, hub_env):
    folder = write_hub_parquet(hub_env / "files", order=["1", "2", "3", "5", "4", "7", "6", "11", "10", "8"])
    (hub_env / "sqa").mkdir()
    (hub_env / "sqa" / "my_problems.json").write_text(json.dumps(PROBLEMS))
    out = hub_env / "data"
    result = cli("prepare", folder, "--out", out, "--problems", hub_env / "sqa" / "my_problems.json", "--json")
    assert result.exit_code == 0, result.output
    test = load_records(out, "test")
    assert [r["qid"] for r in test] == ["7", "6", "10", "11", "8"]  # the twins: in qid order, said so
    assert {r["qid"]: r["question"] for r in test}["6"] == "Question 6?"
    assert [r["qid"] for r in load_records(out, "val")] == ["5", "4"]
    assert "2 rows share their text" in result.stderr
    assert load_manifest(out)["qids"] == "recovered"


def test_a_row_no_problem_matches_is_a_bad_item(cli, hub_env):
    folder = write_hub_parquet(hub_env / "files")
    problems = dict(PROBLEMS)
    problems["7"] = {**problems["7"], "question": "Changed?"}
    (hub_env / "problems.json").write_text(json.dumps(problems))
    result = cli("prepare", folder, "--out", hub_env / "data", "--problems", hub_env / "problems.json")
    assert result.exit_code != 0
    assert "test row 1" in result.stderr and "no qid in" in result.stderr
    assert not (hub_env / "data" / "test.jsonl").exists()


def test_lmms_lab_layout_reads_the_full_config(cli, hub_env):
    files = hub_env / "lmms"
    write_hub_parquet(files, prefix="ScienceQA-FULL")
    write_hub_parquet(files, {q: p for q, p in PROBLEMS.items() if p["image"]}, prefix="ScienceQA-IMG")
    out = hub_env / "data"
    assert cli("prepare", files, "--out", out).exit_code == 0
    assert len(load_records(out, "test")) == 5
    assert cli("prepare", files / "ScienceQA-IMG", "--out", hub_env / "img").exit_code == 0
    assert len(load_records(hub_env / "img", "test")) == 4  # 6, 8, 10, 11


def test_prepare_from_parquet_prints_no_progress_bars_of_datasets(cli, hub_env):
    # datasets' "Generating test split: 0 examples [00:00, ...]" bars were the noisiest lines of a first-hour log
    import datasets

    before = datasets.is_progress_bar_enabled()
    res = cli("prepare", write_hub_parquet(hub_env / "files"), "--out", hub_env / "data")
    assert res.exit_code == 0 and "Generating" not in res.stderr and "examples/s" not in res.stderr, res.stderr
    assert datasets.is_progress_bar_enabled() == before  # restored for whoever uses datasets next


def test_uncached_hub_id_offline_fails_in_one_line(cli, hub_env):
    result = cli("prepare", "someone/NotCached", "--out", hub_env / "data")
    assert result.exit_code != 0
    assert "HF_HUB_OFFLINE" in result.stderr and "Traceback" not in result.stderr
    assert not (hub_env / "data" / "train.jsonl").exists()


def test_problems_file_of_any_name_and_images_of_a_renamed_split(cli, tmp_path):
    src = tmp_path / "sqa"
    (src / "images" / "heldout" / "6").mkdir(parents=True)
    (src / "images" / "heldout" / "6" / "image.png").write_bytes(_png((1, 2, 3)))
    problems = {q: {**p, "split": "heldout"} for q, p in PROBLEMS.items() if q in ("6", "7")}
    (src / "scienceqa_problems_v2.json").write_text(json.dumps(problems))
    out = tmp_path / "data"
    result = cli("prepare", src, "--problems", src / "scienceqa_problems_v2.json", "--splits", "heldout",
                 "--out", out)
    assert result.exit_code == 0, result.output
    records = {r["qid"]: r for r in load_records(out, "heldout")}
    assert Path(records["6"]["image_paths"][0]).parent.name == "6" and records["7"]["image_paths"] == []
    # the file itself as SRC works too
    assert cli("prepare", src / "scienceqa_problems_v2.json", "--splits", "heldout",
               "--out", tmp_path / "d2").exit_code == 0


def test_images_missing_under_every_folder_say_where_it_looked(cli, tmp_path):
    src = tmp_path / "sqa"
    (src / "images" / "test" / "99").mkdir(parents=True)  # images of another problem only
    problems = {"6": {**PROBLEMS["6"], "split": "mine"}}
    (src / "problems.json").write_text(json.dumps(problems))
    result = cli("prepare", src, "--splits", "mine", "--out", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "download that split's images" not in result.stderr
    assert "looked in <qid>/ and <folder>/<qid>/" in result.stderr


def test_published_rows_stay_away_from_unofficial_splits(make_record):
    from mmcot_cli.reporting.published import PUBLISHED, why_not_published

    table = PUBLISHED["scienceqa"]
    records = [make_record(qid=f"test-{i}") for i in range(3)]
    assert "carry no original qids" in why_not_published(table, "test", records, {"official_splits": False})
    carved = {"official_splits": False, "carved_from": {"split": "test"}}
    assert "carved from split 'test'" in why_not_published(table, "test", records, carved)
    assert "3 questions, not 4,241" in why_not_published(table, "test", records, {"format": "hub"})


def test_first_hour_on_the_hub_layout_in_five_commands(cli, hub_env, monkeypatch):
    """Issue 25's target: from a folder of the Hub's parquet files, prepare → extract → train → generate → score,
    each printing progress lines in a log (the interval set to 0 here; 15 s by default, MMCOT_PROGRESS_SECONDS)."""
    import re

    from test_train import TINY_ARGS

    from mmcot_cli import progress

    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    files = write_hub_parquet(hub_env / "files")
    data, feats, run = hub_env / "data", hub_env / "feats", hub_env / "run"
    steps = [("prepare", files, "--out", data),
             ("extract", "--backbone", "patches", "--data", data, "--split", "train,val,test", "--out", feats,
              "--workers", "0"),
             ("train", "--stage", "rationale", "--data", data, "--features", feats, "--text-model", "t5-scratch",
              "--out", run, "--epochs", "2", "--batch-size", "1", "--max-output-len", "8", "--eval-every", "0",
              *TINY_ARGS),
             ("generate", "--run", run, "--data", data, "--split", "test", "--max-new-tokens", "4"),
             ("score", run / "preds-test.jsonl", "--data", data, "--split", "test")]
    for args in steps:
        res = cli(*args)
        assert res.exit_code == 0, (args[0], res.output)
        lines = re.findall(r"^.+: \d+/\d+ \(\d+%\)  .*elapsed \d+:\d\d.*$", res.stderr, re.M)
        assert lines, (args[0], res.stderr)
    assert "rationale ROUGE-L" in res.stdout or "ROUGE-L" in res.stdout
