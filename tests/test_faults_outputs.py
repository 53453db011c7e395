"""Fault class 2 (issue 10): outputs aimed at existing things or at the inputs are refused before any work
(exit 2, one line naming both), nothing is changed, and each output folder records which command wrote it."""

from __future__ import annotations

import json

import pytest
from faultkit import (
    TINY_TEXT,
    aokvqa_source,
    assert_one_error,
    checksums,
    jsonl_source,
    mmcot,
    predictions,
    release_features,  # noqa: F401 (fixture)
    world,
)


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
    from mmcot_cli.output_guard import folder_owner, kind_of

    assert kind_of("import-features") == kind_of("extract") == "features"
    assert folder_owner("/nonexistent") is None


LATER_CASES = ["import_run_over_checkpoint", "import_run_into_data", "import_run_into_store", "import_run_over_run",
               "import_features_into_data", "import_features_inside_data", "import_features_into_run",
               "import_features_over_name_map", "report_over_preds", "report_into_data", "report_inside_data",
               "report_into_run", "report_over_input_file", "rationales_over_source", "rationales_inside_data",
               "rationales_into_data", "rationales_over_split_file", "prepare_jsonl_into_store",
               "prepare_jsonl_over_source", "prepare_jsonl_into_file", "prepare_aokvqa_into_run",
               "prepare_aokvqa_into_source", "ablation_into_data", "ablation_inside_data", "ablation_into_store",
               "ablation_into_run"]


@pytest.mark.parametrize("case", LATER_CASES)
def test_later_commands_refuse_outputs_aimed_at_inputs(world, tmp_path, case):
    """import-run, import-features, report, rationales, prepare --format aokvqa|jsonl and demo --ablation get
    the same guard: refused before any work, exit 2, one line naming the output and what it collides with."""
    inputs = tmp_path / "inputs"
    ckpt = inputs / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    npy, name_map = release_features(world, inputs / "release")
    preds = predictions(world, inputs / "preds.jsonl")
    src_jsonl = jsonl_source(inputs / "jsonl")
    aok = aokvqa_source(inputs / "aokvqa")
    imp_run = ["import-run", ckpt, "--stage", "answer", "--out"]
    imp_feat = ["import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out"]
    report = ["report", world.run, "--data", world.data, "--out"]
    rationales = ["rationales", "import", preds, "--data", world.data, "--split", "test", "--out"]
    ablation = ["demo", "--ablation", "--tiny", "--out"]
    cases = {
        "import_run_over_checkpoint": (imp_run + [ckpt], ["is the input CHECKPOINT"]),
        "import_run_into_data": (imp_run + [world.data], [str(world.data), "prepare"]),
        "import_run_into_store": (imp_run + [world.feats], [str(world.feats), "extract"]),
        "import_run_over_run": (imp_run + [world.run], [str(world.run), "not empty"]),
        "import_features_into_data": (imp_feat + [world.data], ["is the input --data"]),
        "import_features_inside_data": (imp_feat + [world.data / "f"], ["inside", str(world.data)]),
        "import_features_into_run": (imp_feat + [world.run], [str(world.run), "train"]),
        "import_features_over_name_map": (imp_feat + [inputs / "release"], ["contains the input"]),
        "report_over_preds": (report + [world.run / "preds-test.jsonl"], ["is the input"]),
        "report_into_data": (report + [world.data], ["is a directory"]),
        "report_inside_data": (report + [world.data / "r.html"], ["inside", str(world.data)]),
        "report_into_run": (report + [world.run], ["is a directory"]),
        "report_over_input_file": (["report", preds, "--data", world.data, "--out", preds], ["is the input"]),
        "rationales_over_source": (rationales + [preds], ["is the input SOURCE"]),
        "rationales_inside_data": (rationales + [world.data / "r.jsonl"], ["inside", str(world.data)]),
        "rationales_into_data": (rationales + [world.data], ["is a directory"]),
        "rationales_over_split_file": (rationales + [world.data / "test.jsonl"], ["input"]),
        "prepare_jsonl_into_store": (["prepare", src_jsonl, "--out", world.feats], [str(world.feats), "extract"]),
        "prepare_jsonl_over_source": (["prepare", src_jsonl.parent, "--out", src_jsonl.parent],
                                      ["is the input SRC"]),
        "prepare_jsonl_into_file": (["prepare", src_jsonl, "--out", preds], ["not a directory"]),
        "prepare_aokvqa_into_run": (["prepare", aok, "--out", world.run], [str(world.run), "train"]),
        "prepare_aokvqa_into_source": (["prepare", aok, "--out", aok], ["is the input SRC"]),
        "ablation_into_data": (ablation + [world.data], [str(world.data), "prepare"]),
        "ablation_inside_data": (ablation + [world.data / "abl"], ["inside", str(world.data)]),
        "ablation_into_store": (ablation + [world.feats], [str(world.feats), "extract"]),
        "ablation_into_run": (ablation + [world.run], [str(world.run), "train"]),
    }
    args, needles = cases[case]
    before = checksums(world.root, inputs)
    assert_one_error(mmcot(*args), 2, *needles)
    assert checksums(world.root, inputs) == before  # nothing written, replaced or mixed in
    for leftover in (world.data / "f", world.data / "abl", world.data / "r.html", world.data / "r.jsonl"):
        assert not leftover.exists()


def test_later_commands_mark_their_folders(world, tmp_path):
    """prepare --format jsonl|aokvqa and import-features record their writer like prepare and extract do."""
    npy, name_map = release_features(world, tmp_path / "release")
    for args, folder, command in (
        (["prepare", jsonl_source(tmp_path / "jsonl"), "--out", tmp_path / "d1"], tmp_path / "d1", "prepare"),
        (["prepare", aokvqa_source(tmp_path / "aok"), "--out", tmp_path / "d2"], tmp_path / "d2", "prepare"),
        (["import-features", npy, "--name-map", name_map, "--data", world.data, "--split", "test", "--backbone",
          "patches", "--out", tmp_path / "f"], tmp_path / "f", "import-features"),
    ):
        res = mmcot("-q", *args)
        assert res.exit_code == 0, res.stderr
        marker = json.loads((folder / ".mmcot-output.json").read_text())
        assert marker["command"] == command
    # a store written by import-features is an input: prepare does not write into it
    assert_one_error(mmcot("prepare", world.bench, "--out", tmp_path / "f"), 2, "import-features")
