"""Fault class 7 (issue 10): a qid in two of the splits being prepared is an error naming the qid and both
splits, unless --allow-overlap; ScienceQA's by-design supersets (trainval ⊇ train, mini* ⊆ their split) are fine."""

from __future__ import annotations

import json
import shutil

import pytest
from faultkit import assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)


def _bench(world, tmp_path, edit):
    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    splits = json.loads((bench / "pid_splits.json").read_text())
    edit(splits)
    (bench / "pid_splits.json").write_text(json.dumps(splits))
    return bench, splits


def test_qid_in_train_and_test_is_leakage(world, tmp_path):
    bench, splits = _bench(world, tmp_path, lambda s: s["test"].append(s["train"][3]))
    leaked = splits["train"][3]
    before = checksums(bench)
    res = mmcot("prepare", bench, "--out", tmp_path / "data")
    assert_one_error(res, 1, f"qid {leaked}", "'train'", "'test'", "pid_splits.json", "--allow-overlap")
    assert not (tmp_path / "data").exists() and checksums(bench) == before
    res = mmcot("-q", "prepare", bench, "--out", tmp_path / "data", "--allow-overlap")
    assert res.exit_code == 0, res.stderr
    prepared = {split: [json.loads(x)["qid"] for x in (tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()]
                for split in ("train", "test")}  # allowed: the qid is kept in both splits
    assert leaked in prepared["train"] and leaked in prepared["test"]


def test_leakage_only_among_prepared_splits(world, tmp_path):
    bench, _ = _bench(world, tmp_path, lambda s: s["test"].append(s["train"][3]))
    res = mmcot("-q", "prepare", bench, "--out", tmp_path / "data", "--splits", "train,val")
    assert res.exit_code == 0, res.stderr
    written = sorted(p.name for p in (tmp_path / "data").glob("*.jsonl"))
    assert written == ["train.jsonl", "val.jsonl"]  # the overlapping test split was not prepared


def _supersets(s):
    s["trainval"] = s["train"] + s["val"]
    s["minitrain"] = s["train"][:5]
    s["minitest"] = s["test"][:3]


def test_by_design_supersets_are_fine(world, tmp_path):
    bench, _ = _bench(world, tmp_path, _supersets)
    res = mmcot("-q", "prepare", bench, "--out", tmp_path / "data",
                "--splits", "train,val,test,trainval,minitrain,minitest")
    assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize("pair", [("trainval", "test"), ("minitrain", "test"), ("train", "minitest")])
def test_supersets_do_not_excuse_leakage_into_other_splits(pair):
    from mmcot_cli.data.leakage import check_split_overlap
    from mmcot_cli.errors import DataError

    a, b = pair
    splits = {a: ["1", "2", "3"], b: ["3", "9"]}
    with pytest.raises(DataError, match=f"qid 3 is in both split '{a}' and split '{b}'"):
        check_split_overlap(splits, "pid_splits.json")
    check_split_overlap(splits, "pid_splits.json", allow=True)


def test_a_subset_that_is_not_a_known_pair_is_leakage():
    from mmcot_cli.data.leakage import check_split_overlap
    from mmcot_cli.errors import DataError

    with pytest.raises(DataError, match="qid 1"):
        check_split_overlap({"train": ["1", "2"], "test": ["1"]}, "pid_splits.json")  # test ⊆ train: leakage


# --------------------------------------------------------------------------- prepare --format aokvqa|jsonl


def test_jsonl_id_in_two_splits_is_leakage(tmp_path):
    from faultkit import jsonl_source

    src = jsonl_source(tmp_path / "src", [{"id": "q1", "split": "test", "question": "Again?", "choices": ["a", "b"],
                                           "answer": 0}])
    before = checksums(src)
    for extra in ([], ["--skip-bad"]):  # leakage is not a bad item to skip
        res = mmcot("prepare", src, "--out", tmp_path / "data", *extra)
        assert_one_error(res, 1, "qid q1", "'train'", "'test'", str(src), "--allow-overlap")
        assert not (tmp_path / "data").exists() and checksums(src) == before
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data", "--allow-overlap", "--json")
    assert res.exit_code == 0, res.stderr
    for split in ("train", "test"):
        qids = [json.loads(line)["qid"] for line in (tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()]
        assert "q1" in qids


def test_jsonl_duplicate_id_within_a_split_stays_a_bad_item(tmp_path):
    from faultkit import jsonl_source

    src = jsonl_source(tmp_path / "src", [{"id": "q1", "split": "train", "question": "Again?", "choices": ["a", "b"],
                                           "answer": 0}])
    res = mmcot("prepare", src, "--out", tmp_path / "data", "--allow-overlap")
    assert_one_error(res, 1, "id q1", "duplicate id in split train")


def test_aokvqa_question_in_two_splits_is_leakage(tmp_path):
    from faultkit import aokvqa_item, aokvqa_source

    src = aokvqa_source(tmp_path / "src", {"train": [aokvqa_item(i) for i in range(4)],
                                           "val": [aokvqa_item(i) for i in (2, 5)]})
    res = mmcot("prepare", src, "--out", tmp_path / "data")
    assert_one_error(res, 1, "qid a2", "'train'", "'val'", "--allow-overlap")
    assert not (tmp_path / "data").exists()
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data", "--allow-overlap")
    assert res.exit_code == 0, res.stderr
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data2", "--splits", "val")  # only among prepared splits
    assert res.exit_code == 0, res.stderr
