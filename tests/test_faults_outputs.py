"""Fault class 2 (issue 10): outputs aimed at existing things or at the inputs are refused before any work
(exit 2, one line naming both), nothing is changed, and each output folder records which command wrote it."""

from __future__ import annotations

import json

import pytest
from faultkit import TINY_TEXT, assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)


def _train(world, out, *extra):
    return mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                 "t5-scratch", "--out", out, "--epochs", "1", "--limit-train", "4", "--val-split", "none",
                 *TINY_TEXT, *extra)


@pytest.mark.parametrize("case", ["extract_into_data", "extract_into_run", "extract_into_file",
                                  "prepare_into_store", "prepare_into_run", "prepare_into_source",
                                  "prepare_into_parent_of_source", "prepare_into_file",
                                  "train_into_data", "train_into_store", "train_into_file", "train_inside_data",
                                  "generate_over_input", "generate_into_data", "generate_into_store",
                                  "generate_into_dir", "demo_into_data"])
def test_output_aimed_at_inputs_or_other_outputs_is_refused(world, tmp_path, case):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me\n")
    gen = ["generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out"]
    ext = ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--workers", "0", "--out"]
    cases = {
        "extract_into_data": (ext + [world.data], [str(world.data), "is the input --data"]),
        "extract_into_run": (ext + [world.run], [str(world.run), "train"]),
        "extract_into_file": (ext + [a_file], [str(a_file), "not a directory"]),
        "prepare_into_store": (["prepare", world.bench, "--out", world.feats], [str(world.feats), "extract"]),
        "prepare_into_run": (["prepare", world.bench, "--out", world.run], [str(world.run), "train"]),
        "prepare_into_source": (["prepare", world.bench, "--out", world.bench], ["is the input SRC"]),
        "prepare_into_parent_of_source": (["prepare", world.bench, "--out", world.root], ["contains the input"]),
        "prepare_into_file": (["prepare", world.bench, "--out", a_file], ["not a directory"]),
        "train_into_data": (None, [str(world.data)]),
        "train_into_store": (None, [str(world.feats), "extract"]),
        "train_into_file": (None, ["not a directory"]),
        "train_inside_data": (None, ["inside", str(world.data), "prepare"]),
        "generate_over_input": (gen + [world.data / "test.jsonl"], [str(world.data / "test.jsonl"), "input"]),
        "generate_into_data": (gen + [world.data / "preds.jsonl"], ["inside", str(world.data)]),
        "generate_into_store": (gen + [world.feats / "preds.jsonl"], ["inside", str(world.feats)]),
        "generate_into_dir": (gen + [tmp_path], ["is a directory"]),
        "demo_into_data": (["demo", "--tiny", "--out", world.data], [str(world.data)]),
    }
    args, needles = cases[case]
    targets = {"train_into_data": world.data, "train_into_store": world.feats, "train_into_file": a_file,
               "train_inside_data": world.data / "run"}
    before = checksums(world.root, a_file)
    res = _train(world, targets[case]) if args is None else mmcot(*args)
    assert_one_error(res, 2, *needles)
    assert checksums(world.root, a_file) == before  # nothing written, replaced or mixed in
    assert not (world.data / "run").exists()


def test_unmarked_non_empty_folder_is_refused(world, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    res = mmcot("prepare", world.bench, "--out", tmp_path / "mine")
    assert_one_error(res, 2, "not written by `mmcot prepare`")


def test_each_output_folder_records_its_writer(world):
    for folder, command in ((world.data, "prepare"), (world.feats, "extract"), (world.run, "train")):
        marker = json.loads((folder / ".mmcot-output.json").read_text())
        assert marker["command"] == command and marker["created_by"].endswith(command)


def test_same_command_may_continue_its_own_folder(world, tmp_path):
    data = tmp_path / "data"
    assert mmcot("-q", "prepare", world.bench, "--out", data).exit_code == 0
    res = mmcot("-q", "prepare", world.bench, "--out", data, "--splits", "test")  # a rerun into its own folder
    assert res.exit_code == 0, res.stderr


def test_library_guard_helpers():
    from mmcot_cli.outputs import folder_owner, kind_of

    assert kind_of("import-features") == kind_of("extract") == "features"
    assert folder_owner("/nonexistent") is None
