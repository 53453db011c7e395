"""Fault class 1 (issue 17): two processes, one output. Every writing command holds its output (a flock on
`.mmcot-lock` in the folder, `.NAME.mmcot-lock` beside a file) for its whole life; a second writer gets one line
naming the holder's pid and command (exit 1) and changes nothing; a dead holder never blocks (the kernel drops
its lock; the file it leaves is not a lock). Shards of one feature store share it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from faultkit import (
    TINY_TEXT,
    aokvqa_source,
    assert_one_error,
    checksums,
    children,  # noqa: F401 (fixture)
    jsonl_source,
    lock_holder,
    mmcot,
    other_writer,
    predictions,
    release_features,
    start_mmcot,
    wait_for,
    world,  # noqa: F401 (fixture)
)

EXTRACT = ["-q", "extract", "--split", "train,val,test", "--workers", "0", "--chunk-size", "8"]


def _train_args(world, out, *extra):
    return ["-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
            "t5-scratch", "--out", out, "--features", world.feats, "--val-split", "none", "--limit-train", "8",
            "--batch-size", "2", *TINY_TEXT, *extra]


def _second_writer_meets_first(first: subprocess.Popen, folder, second_args) -> tuple[int, subprocess.CompletedProcess]:
    """Run `second_args` while `first` (a real mmcot process) holds `folder`: wait until it holds the lock, stop it
    there (SIGSTOP, so it cannot finish first), run the second, then let the first go on. Returns (first's pid,
    the second's result)."""
    pid = wait_for(lambda: lock_holder(folder) if first.poll() is None else -1, what="the first writer's lock")
    assert pid == first.pid, first.stderr.read() if first.poll() is not None else pid
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, second_args)], capture_output=True,
                                text=True, timeout=300)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    return pid, second


def test_two_extracts_into_one_store_real_processes(world, tmp_path, children):
    """The issue's case: resnet and patches into one --out at once left a store whose manifest said (49, 192)
    while its chunks held (1, 2048). Now the second is refused and the first's store is whole."""
    store = tmp_path / "store"
    first = start_mmcot(*EXTRACT, "-b", "patches", "--data", world.data, "--out", store, "--batch-size", "1")
    children.append(first)
    pid, second = _second_writer_meets_first(
        first, store, [*EXTRACT, "-b", "resnet", "--random-init", "--data", world.data, "--out", store])
    assert_one_error(second, 1, str(store), f"pid {pid}", "mmcot extract")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    from mmcot_cli.features.store import open_store

    s = open_store(store)
    assert s.backbone == "patches" and all(tuple(f.shape[1:]) == (49, 192) for f in s.files)
    assert all(info["complete"] for info in s.manifest["splits"].values())
    assert not list(store.glob(".mmcot-lock*"))  # released and removed by its holder


def test_train_and_resume_at_once_real_processes(world, tmp_path, children):
    """The issue's case: `train --resume` while the first `train` ran; both exited 0 and epochs appeared twice
    in metrics.jsonl. Now the resume is refused and every epoch is logged once."""
    run = tmp_path / "run"
    first = start_mmcot(*_train_args(world, run, "--epochs", "2", "--save-every", "0"))
    children.append(first)
    pid, second = _second_writer_meets_first(first, run, _train_args(world, run, "--epochs", "2", "--resume"))
    assert_one_error(second, 1, str(run), f"pid {pid}", "mmcot train")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_killed_holder_never_blocks(world, tmp_path, children):
    """kill -9 of a writer: the kernel drops its lock; the lock file it leaves (naming a dead pid) is no lock."""
    data = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, json, os, sys, time; os.makedirs(sys.argv[1]);"
                               "fd = os.open(sys.argv[1] + '/.mmcot-lock', os.O_RDWR | os.O_CREAT);"
                               "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, json.dumps({'pid': os.getpid(), "
                               "'command': 'mmcot prepare'}).encode()); print('held', flush=True); time.sleep(600)",
                               str(data)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    children.append(holder)
    assert holder.stdout.readline().strip() == "held"
    refused = mmcot("-q", "prepare", world.bench, "--out", data)
    assert_one_error(refused, 1, f"pid {holder.pid}", "mmcot prepare")
    holder.kill()
    holder.wait()
    assert lock_holder(data) == holder.pid  # its lock file is still there, naming the dead process
    res = mmcot("-q", "prepare", world.bench, "--out", data)
    assert res.exit_code == 0, res.stderr
    assert (data / "test.jsonl").is_file() and not (data / ".mmcot-lock").exists()


@pytest.mark.parametrize("case", ["prepare_scienceqa", "prepare_aokvqa", "prepare_jsonl", "extract", "extract_merge",
                                  "import_features", "train", "train_resume", "generate_run_dir", "generate_file",
                                  "import_run", "demo", "demo_ablation", "report", "rationales_import",
                                  "rationales_import_mm_cot", "rationales_filter", "score_export_aokvqa"])
def test_every_writer_is_refused_while_another_process_holds_its_output(world, tmp_path, case):
    from t5_layouts import make_t5_dir

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    preds = predictions(world, inputs / "preds.jsonl")
    store, run = world.copy("feats", tmp_path), world.copy("run", tmp_path)
    out = tmp_path / "out"
    cases = {  # (command line, output held, holder's command, lock kind)
        "prepare_scienceqa": (["prepare", world.bench, "--out", out], out, "prepare", "dir"),
        "prepare_aokvqa": (["prepare", aokvqa_source(inputs / "aok"), "--out", out], out, "prepare", "dir"),
        "prepare_jsonl": (["prepare", jsonl_source(inputs / "jsonl"), "--out", out], out, "prepare", "dir"),
        "extract": ([*EXTRACT, "-b", "patches", "--data", world.data, "--out", store], store, "extract", "dir"),
        "extract_merge": (["extract", "--merge", store], store, "extract", "dir"),
        "import_features": (None, store, "import-features", "dir"),
        "train": (_train_args(world, out, "--epochs", "1"), out, "train", "dir"),
        "train_resume": (_train_args(world, run, "--epochs", "2", "--resume"), run, "train", "dir"),
        "generate_run_dir": (["generate", "--run", run, "--data", world.data, "--device", "cpu"], run, "train", "dir"),
        "generate_file": (["generate", "--run", run, "--data", world.data, "--device", "cpu", "--out",
                           out / "p.jsonl"], out / "p.jsonl", "generate", "file"),
        "import_run": (["import-run", None, "--stage", "answer", "--out", out], out, "import-run", "dir"),
        "demo": (["demo", "--tiny", "--out", out], out, "demo", "dir"),
        "demo_ablation": (["demo", "--ablation", "--tiny", "--out", out], out, "demo", "dir"),
        "report": (["report", run, "--data", world.data, "--out", out / "r.html"], out / "r.html", "report", "file"),
        "rationales_import": (["rationales", "import", preds, "--data", world.data, "--split", "test", "--out",
                               out / "s.jsonl"], out / "s.jsonl", "rationales", "file"),
        "rationales_import_mm_cot": (None, out / "s.jsonl", "rationales", "file"),
        "rationales_filter": (["rationales", "filter", preds, "--data", world.data, "--split", "test", "--out",
                               out / "s.jsonl"], out / "s.jsonl", "rationales", "file"),
        "score_export_aokvqa": (None, out / "a.json", "score", "file"),
    }
    args, held, command, kind = cases[case]
    if case == "import_features":
        npy, name_map = release_features(world, inputs / "release")
        args = ["import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", store]
    if case == "import_run":
        args[1] = make_t5_dir(inputs / "ckpt", tokenizer="spiece", weights="bin", tied=True)
    if case == "rationales_import_mm_cot":  # the original's positional stage-1 file, one pred per test problem
        count = len((world.data / "test.jsonl").read_text().splitlines())
        original = inputs / "predictions_ans_test.json"
        original.write_text(json.dumps({"preds": ["Solution: x."] * count}))
        args = ["rationales", "import", original, "--format", "mm-cot", "--data", world.data, "--split", "test",
                "--out", held]
    if case == "score_export_aokvqa":
        data = inputs / "aok-data"
        assert mmcot("-q", "prepare", aokvqa_source(inputs / "aok"), "--out", data).exit_code == 0
        apreds = inputs / "apreds.jsonl"
        apreds.write_text("".join(json.dumps({"qid": f"a{i}", "prediction": "The answer is (A)."}) + "\n"
                                  for i in (4, 5)))
        args = ["score", apreds, "--data", data, "--split", "val", "--export-aokvqa", held]
    before = checksums(tmp_path)
    with other_writer(held, command, kind) as pid:
        res = mmcot(*args)
    assert_one_error(res, 1, str(held), f"pid {pid}", f"mmcot {command}")
    after = {p: s for p, s in checksums(tmp_path).items() if ".mmcot-lock" not in p}
    assert after == before  # nothing written, replaced or cleaned while another process held the output


def test_shards_of_one_store_run_side_by_side(world, tmp_path):
    """`extract --shard K/N` jobs share the store (examples/extract_slurm_array.sh): another shard proceeds while
    shard 0 runs; the same shard twice, an unsharded extract or a merge is refused."""
    store = tmp_path / "store"
    ext = [*EXTRACT, "-b", "patches", "--data", world.data, "--out", store]
    with other_writer(store, "0-of-2", "shard") as pid:
        assert mmcot(*ext, "--shard", "1/2").exit_code == 0
        assert_one_error(mmcot(*ext, "--shard", "0/2"), 1, f"pid {pid}", "mmcot extract --shard 0/2")
        assert_one_error(mmcot(*ext), 1, f"pid {pid}", "--shard 0/2")
        assert_one_error(mmcot("extract", "--merge", store), 1, f"pid {pid}")
    res = mmcot(*ext, "--shard", "0/2")  # the holder has ended: its shard runs now
    assert res.exit_code == 0, res.stderr
    assert mmcot("-q", "extract", "--merge", store).exit_code == 0
    assert sorted(p.name for p in store.iterdir() if p.name.startswith(".")) == [".mmcot-output.json"]


def test_a_store_described_by_another_backbone_meanwhile_is_refused_at_first_write(world, tmp_path):
    """Shard jobs of two backbones: each checks the store's identity again, under the store's metadata lock,
    right before its first chunk; the second one to get there is refused before writing anything."""
    from mmcot_cli.errors import MMCoTError
    from mmcot_cli.features.store import FORMAT, init_store, open_store

    store = tmp_path / "store"
    assert mmcot(*EXTRACT, "-b", "patches", "--data", world.data, "--out", store, "--shard", "0/2").exit_code == 0
    resnet = {"format": FORMAT, "backbone": "resnet", "variant": "", "weights": "random-init",
              "feature_shape": [1, 2048], "dtype": "float16", "chunk_size": 8}
    before = checksums(store)
    with pytest.raises(MMCoTError, match="backbone='patches'"):
        init_store(store, resnet, [])
    assert checksums(store) == before and open_store(store).backbone == "patches"


def test_lock_helpers_release_and_reenter(tmp_path):
    """The lock: re-entrant within one process (a command calling another's library function on the same
    output), removed by its exclusive holder, and an empty folder it created is removed again."""
    from mmcot_cli.outputs import OutputInUseError, claim_output_dir, hold_lock

    out = tmp_path / "a" / "b"
    with claim_output_dir(out, "prepare"):
        with claim_output_dir(out, "prepare"):  # nested in the same process: fine
            assert (out / ".mmcot-lock").is_file()
        assert json.loads((out / ".mmcot-lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "a").exists()  # created for the claim, left empty: removed
    with other_writer(out, "train") as pid, pytest.raises(OutputInUseError, match=f"pid {pid}"):
        with hold_lock(out / ".mmcot-lock", "prepare", out):
            pass


def test_cleaning_up_never_touches_a_live_writers_files(tmp_path):
    """A folder's new holder removes debris and stale lock files, but not the temporary file and lock of a file
    another process is still writing in it (`report --out DIR/r.html` while `prepare --out DIR` starts)."""
    from mmcot_cli.outputs import claim_output_dir

    out = tmp_path / "out"
    out.mkdir()
    live_tmp, dead_tmp = out / ".r.html.abcdefgh.tmp", out / ".old.html.abcdefgh.tmp"
    (out / ".old.html.mmcot-lock").write_text('{"pid": 1}')  # left by a killed writer of old.html
    with other_writer(out / "r.html", "report", "file"):
        live_tmp.write_text("being written")
        dead_tmp.write_text("left behind")
        with claim_output_dir(out, "prepare"):
            pass
        assert live_tmp.exists() and (out / ".r.html.mmcot-lock").exists()
        assert not dead_tmp.exists() and not (out / ".old.html.mmcot-lock").exists()
    with claim_output_dir(out, "prepare"):  # the writer has ended: now its leftovers are debris
        pass
    assert list(out.iterdir()) == []
