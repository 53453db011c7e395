"""`mmcot train --report-to`: TensorBoard event files written offline through Accelerate's tracker."""

from __future__ import annotations

import json

import pytest
from test_train import TINY_ARGS, make_records, write_split


def _events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(logdir.rglob("events.out.tfevents.*"))
    assert files, f"no event files under {logdir}"
    scalars = {}
    for path in files:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return scalars


def test_tensorboard_logs_loss_lr_validation_and_config(cli, tmp_path):
    pytest.importorskip("tensorboard")
    data = tmp_path / "data"
    write_split(data, "train", make_records("train", 12, 1))
    write_split(data, "val", make_records("val", 6, 101))
    out = tmp_path / "run"
    res = cli("-q", "train", "--stage", "rationale", "--data", data, "--text-model", "t5-scratch", "--out", out,
              "--epochs", "2", "--batch-size", "4", "--lr", "3e-3", "--max-output-len", "8", *TINY_ARGS,
              "--report-to", "tensorboard", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    scalars = _events(out / "tracking" / "mmcot")
    # Every optimizer step's loss and lr, at steps 1..N.
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, summary["steps"] + 1))
    assert all(v > 0 for _, v in scalars["train/loss"])
    assert [s for s, _ in scalars["train/lr"]] == list(range(1, summary["steps"] + 1))
    # The validation metric of each epoch, equal to what metrics.jsonl says.
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(s, round(v, 3)) for s, v in scalars["val/rougeL"]] == [(r["step"], round(r["val_rougeL"], 3))
                                                                     for r in rows]
    assert "epoch/train_loss" in scalars
    # The run configuration as hyperparameters (accelerate also keeps a copy as hparams.yml).
    hparams = list((out / "tracking" / "mmcot").rglob("hparams.yml"))
    assert hparams and "lr: 0.003" in hparams[0].read_text() and "report_to: tensorboard" in hparams[0].read_text()


def test_default_writes_no_tracking_files_and_unknown_tracker_exits_2(cli, tmp_path):
    data = tmp_path / "data"
    write_split(data, "train", make_records("train", 4, 1))
    out = tmp_path / "run"
    res = cli("-q", "train", "--stage", "rationale", "--data", data, "--text-model", "t5-scratch", "--out", out,
              "--epochs", "1", "--batch-size", "4", "--max-output-len", "4", "--val-split", "none", *TINY_ARGS)
    assert res.exit_code == 0, res.output
    assert not (out / "tracking").exists()
    res = cli("train", "--stage", "rationale", "--data", data, "--text-model", "t5-scratch", "--out",
              tmp_path / "x", "--report-to", "comet")
    assert res.exit_code == 2
    assert "tracker" in res.stderr and "tensorboard" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()
