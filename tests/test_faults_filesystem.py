"""Fault class 1 (issue 10): file-system faults in every command that writes — no space (ENOSPC), permission
denied (EACCES), read-only parent (EROFS), unwritable stdout — give one line naming the path, exit 1, no partial
output, inputs unchanged; outputs have ordinary permissions."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess

import pytest
from faultkit import (
    TINY_TEXT,
    aokvqa_item,
    aokvqa_source,
    assert_one_error,
    checksums,
    jsonl_source,
    leftovers,
    mmcot,  # noqa: F401
    mmcot_subprocess,
    predictions,
    release_features,
    tiny_tmpfs,
    world,
)


def test_prepare_no_space_leaves_no_split_files(world, tmp_path):
    before = checksums(world.bench)
    with tiny_tmpfs(tmp_path / "full", "16k") as full:  # train.jsonl alone is ~24 KB
        out = full / "data"
        res = mmcot("prepare", world.bench, "--out", out)
        assert_one_error(res, 1, str(out), "No space left on device")
        assert not out.exists() or sorted(os.listdir(out)) == []  # no train.jsonl without its siblings
    assert checksums(world.bench) == before


def test_prepare_read_only_parent(world, tmp_path):
    with tiny_tmpfs(tmp_path / "ro", "16k", readonly=True) as ro:
        res = mmcot("prepare", world.bench, "--out", ro / "data")
        assert_one_error(res, 1, str(ro / "data"), "Read-only file system")


def test_prepare_permission_denied_names_the_path(world, tmp_path, monkeypatch):
    import mmcot_cli.io as io_mod

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(io_mod.tempfile, "mkdtemp", denied)  # root ignores mode bits: inject EACCES
    out = tmp_path / "data"
    res = mmcot("prepare", world.bench, "--out", out)
    assert_one_error(res, 1, str(out), "Permission denied")
    assert not out.exists() or not any(out.iterdir())


def test_extract_no_space(world, tmp_path):
    before = checksums(world.data)
    with tiny_tmpfs(tmp_path / "full", "16k") as full:
        out = full / "feats"
        res = mmcot("extract", "-b", "patches", "--data", world.data, "--split", "train", "--out", out,
                    "--workers", "0")
        assert_one_error(res, 1, "No space left on device")
        assert leftovers(full) == []
    assert checksums(world.data) == before


def test_extract_merge_no_space(world, tmp_path, monkeypatch):
    import mmcot_cli.features.store_files as sf

    feats = world.copy("feats", tmp_path)
    before = checksums(feats)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safetensors.numpy.save_file", no_space)
    assert sf  # the writer imports save_file when it writes
    res = mmcot("extract", "--merge", feats)
    assert_one_error(res, 1, str(feats), "No space left on device")
    assert leftovers(feats) == [] and checksums(feats) == before


def test_demo_benchmark_no_space(tmp_path):
    with tiny_tmpfs(tmp_path / "full", "16k") as full:
        res = mmcot("-q", "demo", "--generate-only", "--tiny", "--out", full / "bench")
        errors = [line for line in res.stderr.splitlines() if line.startswith("error")]  # after demo's ▶ steps
        assert res.exit_code == 1 and "Traceback" not in res.stderr and len(errors) == 1, res.stderr
        assert f"{full / 'bench'}: cannot write (No space left on device)" in errors[0]
        assert os.listdir(full) == []


def test_generate_no_space_leaves_no_predictions(world, tmp_path):
    with tiny_tmpfs(tmp_path / "full", "4k") as full:
        out = full / "preds-{split}.jsonl"
        res = mmcot("generate", "--run", world.run, "--data", world.data, "--split", "val,test", "--out", out,
                    "--device", "cpu", "--max-new-tokens", "40")
        if res.exit_code == 0:
            pytest.skip("predictions fitted into the tmpfs")
        assert_one_error(res, 1, "No space left on device")
        assert sorted(os.listdir(full)) == []  # neither split's file: all renamed together or none


def test_train_checkpoint_fault_leaves_no_temp_dir_and_resume_works(world, tmp_path, monkeypatch):
    import torch

    import mmcot_cli.training.checkpoints as ck

    run = tmp_path / "run"
    args = ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
            "t5-scratch", "--out", run, "--features", world.feats, "--epochs", "1", "--batch-size", "4",
            "--limit-train", "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT]
    calls = {"n": 0}
    real_save = torch.save

    def failing_save(obj, path, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint's optimizer state: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(ck.torch, "save", failing_save)
    res = mmcot(*args)
    assert_one_error(res, 1, "step-00000002", "No space left on device")
    assert leftovers(run) == []
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-")] == ["step-00000001"]
    monkeypatch.setattr(ck.torch, "save", real_save)
    res = mmcot(*args, "--resume")
    assert res.exit_code == 0, res.stderr
    assert (run / "model" / "model.safetensors").is_file()


def test_metrics_append_fault_is_one_line(tmp_path, monkeypatch):
    from mmcot_cli.errors import DataError
    from mmcot_cli.io import append_jsonl

    (tmp_path / "ro").mkdir()
    target = tmp_path / "ro" / "metrics.jsonl"
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mmcot_cli.io.open", full, raising=False)
    with pytest.raises(DataError, match="metrics.jsonl: cannot write"):
        append_jsonl(target, {"loss": float("nan")})


@pytest.mark.parametrize("args", [
    ["score", "{run}/preds.jsonl", "--data", "{data}", "--json"],
    ["prompts", "{data}", "--split", "test"],
    ["backbones", "--json"],
    ["backbones"],
    ["--help"],
    ["--version"],
    ["ask", "--rationale-run", "{run}", "--answer-run", "{run}", "--question", "Q?", "--choices", "a|b",
     "--device", "cpu"],
])
def test_stdout_full_is_one_line(world, args):
    preds = world.run / "preds.jsonl"
    if not preds.exists():
        res = mmcot("generate", "--run", world.run, "--data", world.data, "--out", preds, "--device", "cpu")
        assert res.exit_code == 0, res.stderr
    args = [a.format(run=world.run, data=world.data) for a in args]
    with open("/dev/full", "w") as full:
        proc = mmcot_subprocess(*args, stdout=full)
    assert_one_error(proc, 1, "cannot write to standard output", "No space left on device")


@pytest.mark.parametrize("args", [["backbones", "--json"], ["backbones"], ["--help"], ["train", "--help"],
                                  ["--version"]])
def test_closed_pipe_is_one_line_without_python_noise(args):
    """`mmcot --help | head -0`: one line, exit 1, no "Exception ignored … BrokenPipeError" from the interpreter."""
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "mmcot_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader went away before anything was written
    stderr = proc.stderr.read()
    code = proc.wait(timeout=120)
    assert code == 1 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr.strip() == "error: cannot write to standard output (broken pipe)"


def test_outputs_have_ordinary_permissions(world):
    """Every output file is 0644 and every folder 0755 under umask 022 (safetensors, torch.save, tokenizer
    files and atomic temp files included)."""
    odd = []
    for root in (world.data, world.feats, world.run):
        for p in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode != (0o755 if p.is_dir() else 0o644):
                odd.append(f"{oct(mode)} {p}")
    assert odd == []


def test_metrics_are_strict_json(world):
    for line in (world.run / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON literal {c} in metrics.jsonl"))


# --------------------------------------------------------------------------- commands that landed later

LONG = "x" * 400


@pytest.mark.parametrize("fmt", ["jsonl", "aokvqa"])
def test_prepare_format_no_space_leaves_no_split_files(tmp_path, fmt):
    """The A-OKVQA and JSONL readers stage every split and the manifest: a full disk leaves none of them."""
    if fmt == "jsonl":
        src = jsonl_source(tmp_path / "src", [{"id": f"x{i}", "split": "val", "question": LONG, "choices": ["a", "b"],
                                               "answer": 0} for i in range(40)])
    else:
        src = aokvqa_source(tmp_path / "src", {"train": [dict(aokvqa_item(i), question=LONG) for i in range(40)],
                                               "val": [aokvqa_item(i) for i in range(40, 44)]})
    before = checksums(src)
    with tiny_tmpfs(tmp_path / "full", "8k") as full:
        out = full / "data"
        res = mmcot("-q", "prepare", src, "--out", out)
        assert_one_error(res, 1, str(out), "No space left on device")
        assert not out.exists() or sorted(os.listdir(out)) == []
    assert checksums(src) == before


def test_prepare_format_write_fault_mid_way_leaves_no_split_files(tmp_path, monkeypatch):
    """A fault on the manifest (the last file) still leaves no split file behind (monkeypatched: no root)."""
    import mmcot_cli.data.records as data  # every prepare format writes through data.write_data_dir

    def no_space(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data, "write_json", no_space)
    out = tmp_path / "data"
    res = mmcot("-q", "prepare", jsonl_source(tmp_path / "src"), "--out", out)
    assert_one_error(res, 1, str(out), "No space left on device")
    assert not out.exists() or sorted(os.listdir(out)) == []


def test_report_no_space(world, tmp_path):
    run = world.copy("run", tmp_path)
    predictions(world, run / "preds-test.jsonl")
    with tiny_tmpfs(tmp_path / "full", "4k") as full:
        res = mmcot("-q", "report", run, "--data", world.data, "--out", full / "r.html")
        assert_one_error(res, 1, str(full / "r.html"), "No space left on device")
        assert os.listdir(full) == []


@pytest.mark.parametrize("sub", ["import", "filter"])
def test_rationales_no_space(world, tmp_path, sub):
    qids = [json.loads(line)["qid"] for line in (world.data / "test.jsonl").read_text().splitlines()]
    src = tmp_path / "teacher.jsonl"
    src.write_text("".join(json.dumps({"qid": q, "rationale": f"{LONG} The answer is (A).", "answer": 0}) + "\n"
                           for q in qids for _ in range(20)))
    with tiny_tmpfs(tmp_path / "full", "4k") as full:
        res = mmcot("-q", "rationales", sub, src, "--data", world.data, "--split", "test", "--out", full / "s.jsonl")
        if res.exit_code == 0:
            pytest.skip("the rationale set fitted into the tmpfs")
        assert_one_error(res, 1, str(full / "s.jsonl"), "No space left on device")
        assert os.listdir(full) == []


def test_import_run_no_space_leaves_no_temp_dir(tmp_path):
    from t5_layouts import make_t5_dir

    ckpt = make_t5_dir(tmp_path / "ckpt", tokenizer="spiece", weights="bin", tied=True)
    before = checksums(ckpt)
    with tiny_tmpfs(tmp_path / "full", "16k") as full:
        res = mmcot("-q", "import-run", ckpt, "--stage", "answer", "--out", full / "run")
        assert_one_error(res, 1, str(full / "run"), "No space left on device")
        assert os.listdir(full) == []
    assert checksums(ckpt) == before


def test_import_features_no_space(world, tmp_path):
    npy, name_map = release_features(world, tmp_path / "release")
    before = checksums(tmp_path / "release")
    with tiny_tmpfs(tmp_path / "full", "16k") as full:
        res = mmcot("-q", "import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone",
                    "patches", "--out", full / "f")
        assert_one_error(res, 1, "No space left on device")
        assert leftovers(full) == []
    assert checksums(tmp_path / "release") == before


def test_ablation_no_space(tmp_path):
    with tiny_tmpfs(tmp_path / "full", "4k") as full:
        res = mmcot("-q", "demo", "--ablation", "--tiny", "--out", full / "abl")
        errors = [line for line in res.stderr.splitlines() if line.startswith("error")]  # after the ▶ steps
        assert res.exit_code == 1 and "Traceback" not in res.stderr and len(errors) == 1, res.stderr
        assert "No space left on device" in errors[0] and str(full / "abl") in errors[0]
        assert leftovers(full) == []


@pytest.mark.parametrize("case", ["compare_markdown", "compare_json", "rationales_json", "prepare_jsonl_json",
                                  "report_json", "import_features_json"])
def test_later_commands_stdout_full_is_one_line(world, tmp_path, case):
    preds = predictions(world, tmp_path / "preds.jsonl")
    score = tmp_path / "score.json"
    score.write_text('{"acc_average": 80.0}')
    npy, name_map = release_features(world, tmp_path / "release")
    args = {
        "compare_markdown": ["compare", score, score, "--markdown"],
        "compare_json": ["compare", score, score, "--json"],
        "rationales_json": ["-q", "rationales", "import", preds, "--data", world.data, "--split", "test", "--out",
                            tmp_path / "s.jsonl", "--json"],
        "prepare_jsonl_json": ["-q", "prepare", jsonl_source(tmp_path / "src"), "--out", tmp_path / "d", "--json"],
        "report_json": ["-q", "report", preds, "--data", world.data, "--out", tmp_path / "r.html", "--json"],
        "import_features_json": ["-q", "import-features", npy, "--name-map", name_map, "--data", world.data,
                                 "--split", "test", "--backbone", "patches", "--out", tmp_path / "f", "--json"],
    }[case]
    with open("/dev/full", "w") as full:
        proc = mmcot_subprocess(*args, stdout=full)
    assert_one_error(proc, 1, "cannot write to standard output", "No space left on device")
