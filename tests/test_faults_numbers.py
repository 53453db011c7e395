"""Fault class 3 (issue 10): invalid numbers (NaN, infinities, negative, zero, out of range) in every command are
a usage error (exit 2) naming the option, before any work; the divergence guard stops training whose loss or
weights go non-finite, and metrics.jsonl stays strict JSON."""

from __future__ import annotations

import json

import pytest
from faultkit import TINY_TEXT, assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)

TRAIN_CASES = [
    (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"), (["--lr", "-1e-4"], "--lr"), (["--lr", "0"], "--lr"),
    (["--warmup-ratio", "nan"], "--warmup-ratio"), (["--warmup-ratio", "1.5"], "--warmup-ratio"),
    (["--weight-decay", "-0.1"], "--weight-decay"), (["--weight-decay", "inf"], "--weight-decay"),
    (["--seed", "-1"], "--seed"), (["--seed", str(2**40)], "--seed"),
    (["--epochs", "0"], "--epochs"), (["--batch-size", "0"], "--batch-size"), (["--batch-size", "-3"], "--batch-size"),
    (["--eval-batch-size", "0"], "--eval-batch-size"), (["--grad-accum", "0"], "--grad-accum"),
    (["--max-input-len", "0"], "--max-input-len"), (["--max-output-len", "0"], "--max-output-len"),
    (["--save-every", "-1"], "--save-every"), (["--num-beams", "0"], "--num-beams"),
    (["--eval-every", "-2"], "--eval-every"),
    (["--text-option", "heads=0"], "heads"), (["--text-option", "layers=0"], "layers"),
    (["--text-option", "d_model=-8"], "d_model"), (["--text-option", "dropout=nan"], "dropout"),
    (["--text-option", "dropout=2"], "dropout"),
]


@pytest.mark.parametrize("extra,option", TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_train_rejects_bad_numbers(world, tmp_path, extra, option):
    out = tmp_path / "run"
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", out, "--epochs", "1", "--val-split", "none", *TINY_TEXT, *extra)
    assert_one_error(res, 2, option)
    assert not out.exists()


OTHER_CASES = [
    (["extract", "--batch-size", "0"], "--batch-size"), (["extract", "--batch-size", "-1"], "--batch-size"),
    (["extract", "--chunk-size", "0"], "--chunk-size"), (["extract", "--workers", "-1"], "--workers"),
    (["extract", "--shard", "3/2"], "--shard"), (["extract", "--shard", "-1/2"], "--shard"),
    (["extract", "--shard", "0/0"], "--shard"), (["extract", "--shard", "a/b"], "--shard"),
    (["generate", "--batch-size", "0"], "--batch-size"), (["generate", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["generate", "--num-beams", "0"], "--num-beams"), (["generate", "--limit", "0"], "--limit"),
    (["ask", "--num-beams", "0"], "--num-beams"), (["ask", "--max-new-tokens", "-5"], "--max-new-tokens"),
    (["score", "--seed", "-1"], "--seed"),
    (["demo", "--seed", "-1"], "--seed"), (["demo", "--problems", "0"], "--problems"),
    (["demo", "--threads", "0"], "--threads"),
    (["prompts", "--limit", "-1"], "--limit"),
    # commands and options that landed after the first pass
    (["generate", "--num-samples", "0"], "--num-samples"), (["generate", "--temperature", "nan"], "--temperature"),
    (["generate", "--temperature", "inf"], "--temperature"), (["generate", "--temperature", "0"], "--temperature"),
    (["generate", "--temperature", "-1"], "--temperature"), (["generate", "--top-p", "0"], "--top-p"),
    (["generate", "--top-p", "1.5"], "--top-p"), (["generate", "--top-p", "nan"], "--top-p"),
    (["generate", "--num-samples", "2", "--seed", "-1"], "--seed"),
    (["generate", "--num-samples", "2", "--seed", str(2**40)], "--seed"),
    (["import-run", "--image-tokens", "0"], "--image-tokens"),
    (["import-run", "--image-tokens", "-3"], "--image-tokens"),
    (["report", "--gallery", "-1"], "--gallery"), (["report", "--seed", "-1"], "--seed"),
    (["report", "--seed", str(2**40)], "--seed"),
    (["demo", "--ablation", "--seed", "-1"], "--seed"), (["demo", "--ablation", "--problems", "0"], "--problems"),
    (["demo", "--ablation", "--threads", "0"], "--threads"),
]


@pytest.mark.parametrize("args,option", OTHER_CASES, ids=[" ".join(c[0]) for c in OTHER_CASES])
def test_other_commands_reject_bad_numbers(world, tmp_path, args, option):
    command, extra = args[0], args[1:]
    base = {
        "extract": ["-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                    "--workers", "0"],
        "generate": ["--run", world.run, "--data", world.data, "--device", "cpu", "--out", tmp_path / "p.jsonl"],
        "ask": ["--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices", "a|b",
                "--device", "cpu"],
        "score": [world.data / "test.jsonl", "--data", world.data],
        "demo": ["--tiny", "--out", tmp_path / "demo"],
        "prompts": [world.data],
        "import-run": [world.run, "--stage", "answer", "--out", tmp_path / "imported"],
        "report": [world.run, "--data", world.data, "--out", tmp_path / "r.html"],
    }[command]
    before = checksums(world.root)
    res = mmcot(command, *base, *extra)
    assert_one_error(res, 2, option)
    assert checksums(world.root) == before
    assert not any(tmp_path.iterdir())


def test_divergence_guard_stops_training_and_metrics_stay_json(world, tmp_path):
    """--lr 1e30 is a valid number but blows the weights up: training stops with a clear error, no NaN model is
    saved, and every metrics row that was written is strict JSON."""
    out = tmp_path / "run"
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", out, "--epochs", "2", "--batch-size", "4", "--limit-train", "8",
                "--val-split", "none", "--save-every", "0", *TINY_TEXT, "--lr", "1e30")
    line = assert_one_error(res, 1)
    assert "NaN" in line or "nan" in line or "infinite" in line
    assert not (out / "model").exists()
    metrics = out / "metrics.jsonl"
    for text in metrics.read_text().splitlines() if metrics.exists() else []:
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} literal in metrics.jsonl"))


def test_validate_helpers():
    from mmcot_cli.errors import UsageError
    from mmcot_cli.validate import check_number, probability

    assert probability("--top-p", 1.0) == 1.0
    for bad in (0.0, 1.01, float("nan")):
        with pytest.raises(UsageError, match="--top-p"):
            probability("--top-p", bad)
    with pytest.raises(UsageError, match="--temperature must be > 0"):
        check_number("--temperature", 0.0, low=0, low_open=True)
