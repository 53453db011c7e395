"""`mmcot prepare --carve SPLIT[:TRAIN/VAL/TEST] --seed N` (mmcot_cli.data.carve): one split carved into seeded,
stratified train/val/test parts, recorded in the manifest as not the official splits."""

import json
from collections import Counter

import pytest

from mmcot_cli.data.carve import Carve, carve_records
from mmcot_cli.data.records import load_manifest, load_records
from mmcot_cli.errors import UsageError


def _problems(n=100):
    subjects = ("natural science", "social science", "language science")
    return {str(i): {"question": f"Q{i}?", "choices": ["a", "b"], "answer": i % 2, "hint": "", "image": None,
                     "task": "closed choice", "grade": f"grade{1 + i % 4}", "subject": subjects[i % 3],
                     "topic": "t", "category": "c", "skill": "s", "lecture": "", "solution": f"s{i}",
                     "split": "test"} for i in range(n)}


@pytest.fixture
def only_test(tmp_path):
    src = tmp_path / "sqa"
    src.mkdir()
    (src / "problems.json").write_text(json.dumps(_problems()))
    return src


def test_carve_one_split_seeded_and_stratified(cli, tmp_path, only_test):
    out = tmp_path / "data"
    result = cli("prepare", only_test, "--carve", "test:60/20/20", "--seed", "3", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    parts = {s: load_records(out, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [60, 20, 20]
    assert sorted(r["qid"] for rows in parts.values() for r in rows) == sorted(_problems())
    assert all(r["split"] == s for s, rows in parts.items() for r in rows)
    for s, rows in parts.items():  # every subject in every part, in proportion (34/33/33 overall)
        counts = Counter(r["subject"] for r in rows)
        assert len(counts) == 3 and max(counts.values()) - min(counts.values()) <= 1, (s, counts)
    manifest = load_manifest(out)
    assert manifest["official_splits"] is False
    assert manifest["carved_from"]["split"] == "test" and manifest["carved_from"]["seed"] == 3
    assert manifest["carved_from"]["strata"] == ["subject", "grade"]
    assert set(manifest["splits"]) == {"train", "val", "test"}
    summary = json.loads(result.stdout)
    assert summary["splits"]["val"]["count"] == 20 and "not the source's official splits" in result.stderr
    # the same seed gives the same parts; another seed others
    assert cli("prepare", only_test, "--carve", "test:60/20/20", "--seed", "3", "--out", tmp_path / "d2").exit_code == 0
    assert [r["qid"] for r in load_records(tmp_path / "d2", "val")] == [r["qid"] for r in parts["val"]]
    assert cli("prepare", only_test, "--carve", "test:60/20/20", "--seed", "4", "--out", tmp_path / "d3").exit_code == 0
    assert [r["qid"] for r in load_records(tmp_path / "d3", "val")] != [r["qid"] for r in parts["val"]]


def test_carve_errors(cli, tmp_path, only_test):
    result = cli("prepare", only_test, "--carve", "test:1/x/2", "--out", tmp_path / "d")
    assert result.exit_code == 2 and "SPLIT:TRAIN/VAL/TEST" in result.stderr
    result = cli("prepare", only_test, "--carve", "dev", "--out", tmp_path / "d")
    assert result.exit_code == 2 and "'dev'" in result.stderr
    assert not (tmp_path / "d" / "test.jsonl").exists()
    with pytest.raises(UsageError):
        Carve.parse("test:0/0/0")
    records = [{"qid": str(i), "subject": "x", "image_paths": []} for i in range(2)]
    with pytest.raises(Exception, match="cannot fill 3 parts"):
        carve_records(records, Carve("test"))


def test_carve_keeps_image_strata_balanced():
    records = [{"qid": str(i), "subject": "", "grade": "", "image_paths": ["x.png"] if i < 50 else []}
               for i in range(100)]
    parts, info = carve_records(records, Carve("test", (50, 25, 25), seed=1))
    assert info["strata"] == ["image"]
    assert [sum(1 for r in parts[p] if r["image_paths"]) for p in ("train", "val", "test")] == [25, 12, 13] or \
        [sum(1 for r in parts[p] if r["image_paths"]) for p in ("train", "val", "test")] == [25, 13, 12]


def test_later_commands_say_the_splits_are_carved(cli, tmp_path, only_test):
    """The manifest's record reaches `score` (JSON `splits_note` and a line under the table) and `train` (its
    summary), so a number on carved data is never read as one on the official splits (issue 25)."""
    from test_train import TINY_ARGS

    out = tmp_path / "data"
    assert cli("prepare", only_test, "--carve", "test:60/20/20", "--seed", "3", "--out", out).exit_code == 0
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"qid": r["qid"], "prediction": "The answer is (A)."}) + "\n"
                             for r in load_records(out, "test")))
    note = ("splits carved from 'test' by `prepare --carve` (60/20/20, seed 3, stratified by subject, grade): not "
            "the source's official splits")
    res = cli("score", preds, "--data", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["splits_note"] == note
    res = cli("score", preds, "--data", out)
    assert f"data: {note}" in " ".join(res.stdout.split())
    res = cli("train", "--stage", "rationale", "--data", out, "--text-model", "t5-scratch", "--out", tmp_path / "run",
              "--epochs", "1", "--batch-size", "30", "--max-output-len", "4", "--eval-every", "0", *TINY_ARGS)
    assert res.exit_code == 0, res.output
    assert f"data: {note}" in " ".join(res.stderr.split())
    official = tmp_path / "official"  # the source's own split: nothing said
    assert cli("prepare", only_test, "--splits", "test", "--out", official).exit_code == 0
    res = cli("score", preds, "--data", official, "--json")
    assert json.loads(res.stdout)["splits_note"] is None
