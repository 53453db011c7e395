"""`mmcot train`: collation, the length-grouped sampler, the qid-keyed rationale hand-off, resume and NaN stops.

Tiny from-scratch models (d_model 32, one layer) on 12–18 hand-written records; no network, no sample data.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import torch
from conftest import build_record

from mmcot_cli.errors import DataError
from mmcot_cli.model.batching import LABEL_PAD, Collator, Example, LengthGroupedBatchSampler
from mmcot_cli.runs.rationales import load_rationales
from mmcot_cli.training import inputs as stage_inputs
from mmcot_cli.training import loop as train_mod
from mmcot_cli.training.checkpoints import list_checkpoints
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.training.guards import TrainingDiverged
from mmcot_cli.training.loop import train

TINY = {"d_model": 32, "layers": 1, "heads": 2, "vocab_size": 400}
TINY_ARGS = ["--text-option", "d_model=32", "--text-option", "layers=1", "--text-option", "heads=2",
             "--text-option", "vocab_size=400"]
COLOURS = ["red", "blue", "green", "yellow", "purple"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models: thread start-up costs more than it saves, and the test machine's cores are shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_records(split: str, n: int, start: int, seed: int = 0) -> list[dict]:
    rng = random.Random(f"{split}{seed}")
    rows = []
    for i in range(n):
        choices = rng.sample(COLOURS, 2 + i % 3)
        answer = rng.randrange(len(choices))
        rows.append(build_record(
            qid=str(start + i), split=split, question=f"Which colour is the {['ball', 'box', 'cup'][i % 3]}?",
            hint="" if i % 2 else f"The object is {choices[answer]}.", choices=choices, answer=answer,
            lecture="Colours are seen with the eyes.", solution=f"The object is {choices[answer]}. " * (1 + i % 4),
            topic="colour"))
    return rows


def write_split(data_dir: Path, split: str, rows: list[dict]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    write_split(d, "train", make_records("train", 12, 1))
    write_split(d, "val", make_records("val", 6, 101))
    return d


def tiny_cfg(data_dir: Path, out: Path, **kw) -> TrainConfig:
    base = dict(stage="rationale", data_dir=str(data_dir), text_model="t5-scratch", out_dir=str(out), epochs=2,
                batch_size=4, lr=3e-3, max_output_len=12, text_options=dict(TINY))
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------------- collation


def test_collator_pads_each_batch_to_its_longest_and_labels_with_minus_100():
    batch = [Example("a", (5, 6, 1), (7, 1)), Example("b", (5, 1), (7, 8, 9, 1))]
    out = Collator(pad_token_id=0)(batch)
    assert out["qids"] == ["a", "b"]
    assert out["input_ids"].tolist() == [[5, 6, 1], [5, 1, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out["labels"].tolist() == [[7, 1, LABEL_PAD, LABEL_PAD], [7, 8, 9, 1]]
    fixed = Collator(pad_token_id=0, pad_input_to=6, pad_output_to=5)(batch)
    assert fixed["input_ids"].shape == (2, 6) and fixed["labels"].shape == (2, 5)
    assert fixed["attention_mask"].sum().item() == 5


def test_collator_attaches_image_features_by_qid():
    feats = {"a": torch.ones(3, 4), "b": torch.zeros(3, 4)}
    out = Collator(pad_token_id=0, features_by_qid=lambda qids: torch.stack([feats[q] for q in qids]))(
        [Example("b", (1,), (1,)), Example("a", (1,), (1,))])
    assert out["image_features"].shape == (2, 3, 4)
    assert out["image_features"][1].sum().item() == 12 and out["image_features"][0].sum().item() == 0


# ------------------------------------------------------------------------------------------- sampler


def test_sampler_is_deterministic_covers_every_example_and_groups_by_length():
    rng = random.Random(3)
    lengths = [rng.randrange(10, 500) for _ in range(403)]
    s1 = LengthGroupedBatchSampler(lengths, 8, seed=7, group_size=10)
    s2 = LengthGroupedBatchSampler(lengths, 8, seed=7, group_size=10)
    for epoch in (0, 1):
        b1, b2 = s1.epoch_batches(epoch), s2.epoch_batches(epoch)
        assert b1 == b2
        assert sorted(i for b in b1 for i in b) == list(range(len(lengths)))
        assert len(b1) == s1.batches_per_epoch() == 51
    assert s1.epoch_batches(0) != s1.epoch_batches(1)  # a new order every epoch
    assert s1.epoch_batches(0) != LengthGroupedBatchSampler(lengths, 8, seed=8, group_size=10).epoch_batches(0)

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    random_batches = [order[i:i + 8] for i in range(0, len(order), 8)]
    assert padded(s1.epoch_batches(0)) < 0.7 * padded(random_batches)
    # The longest batch comes first (an out-of-memory shows at step 1).
    first = s1.epoch_batches(0)[0]
    assert max(lengths[i] for i in first) == max(lengths)


def test_sampler_resumes_mid_epoch_and_shards_across_processes():
    lengths = list(range(1, 24))
    s = LengthGroupedBatchSampler(lengths, 3, seed=1)
    full = s.epoch_batches(2)
    s.set_epoch(2, start_batch=5)
    assert list(s) == full[5:] and len(s) == len(full) - 5

    shards = [LengthGroupedBatchSampler(lengths, 3, seed=1, num_replicas=3, rank=r) for r in range(3)]
    per_rank = [sh.epoch_batches(0) for sh in shards]
    assert len({len(b) for b in per_rank}) == 1  # same number of steps on every process
    assert per_rank[0][0] == LengthGroupedBatchSampler(lengths, 3, seed=1).epoch_batches(0)[0]
    seen = {i for batches in per_rank for b in batches for i in b}
    assert seen == set(range(len(lengths)))


# ------------------------------------------------------------------------------------------- rationales


def test_rationales_are_read_by_qid_with_provenance_and_missing_qids_named(tmp_path):
    run = tmp_path / "run_r"
    run.mkdir()
    rows = [{"qid": "3", "prediction": "Solution: three.", "stage": "rationale"},
            {"qid": "1", "prediction": "Solution: one.", "stage": "rationale"}]
    (run / "preds-val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = load_rationales(run, "val")
    assert r.for_qids(["1", "3"]) == ["Solution: one.", "Solution: three."]
    assert r.sha256 == hashlib.sha256((run / "preds-val.jsonl").read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"preds-val.jsonl: no rationale for qid 2"):
        r.for_qids(["1", "2"])
    with pytest.raises(DataError, match=r"preds-test.jsonl: file not found"):
        load_rationales(run, "test")
    assert load_rationales(run / "preds-val.jsonl", "anything").by_qid["3"] == "Solution: three."


# ------------------------------------------------------------------------------------------- training


def test_rationale_stage_with_features_trains_saves_and_generates(cli, data_dir, tmp_path):
    from mmcot_cli.features.store import import_features
    from mmcot_cli.model.text.runs import load_run_model

    feats_dir = tmp_path / "feats"
    qids = [str(q) for q in list(range(1, 13)) + list(range(101, 107))]
    g = torch.Generator().manual_seed(0)
    import_features(feats_dir, backbone="patches", split="all", qids=qids,
                    features=torch.randn(len(qids), 4, 8, generator=g).numpy(), dtype="float32")
    out = tmp_path / "run"
    res = cli("-q", "train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out", out,
              "--features", feats_dir, "--epochs", "2", "--batch-size", "4", "--lr", "3e-3", "--max-output-len",
              "12", *TINY_ARGS, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["steps"] == 6 and summary["metric"] == "rougeL" and summary["best"]["value"] is not None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all("val_rougeL" in r for r in rows)
    run_cfg = json.loads((out / "run_config.json").read_text())
    assert run_cfg["prompt_format"] == "QCM-E" and run_cfg["feature_shape"] == [4, 8]
    assert run_cfg["vision_backbone"] == "patches" and run_cfg["rationales"] is None

    model, tok, meta = load_run_model(out)
    assert meta["stage"] == "rationale" and meta["prompt_format"] == "QCM-E" and model.image_shape == (4, 8)
    enc = tok(["Question: Which colour is the ball?"], return_tensors="pt")
    ids = model.generate(**enc, image_features=torch.zeros(1, 4, 8), max_new_tokens=5)
    assert ids.shape[0] == 1 and ids.shape[1] >= 2


def test_answer_stage_reads_rationales_by_qid_and_records_them(cli, data_dir, tmp_path):
    stage1 = tmp_path / "run_r"
    stage1.mkdir()
    for split, qids in (("train", range(1, 13)), ("val", range(101, 107))):
        rows = [{"qid": str(q), "prediction": f"Solution: generated {q}.", "stage": "rationale"} for q in qids]
        random.Random(1).shuffle(rows)  # file order must not matter
        (stage1 / f"preds-{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    cfg = tiny_cfg(data_dir, tmp_path / "unused", stage="answer", rationales=str(stage1),
                   train_on="generated").resolved()
    train_r, val_r, info = stage_inputs.stage_rationales(cfg)
    pairs = stage_inputs.stage_prompts(cfg, stage_inputs.split_records(cfg, "train", None), train_r)
    assert "Solution: generated 1." in pairs[0][0] and pairs[0][1].startswith("The answer is (")
    assert info["train"]["sha256"] == hashlib.sha256((stage1 / "preds-train.jsonl").read_bytes()).hexdigest()

    out = tmp_path / "run_a"
    res = cli("-q", "train", "--stage", "answer", "--data", data_dir, "--text-model", "t5-scratch", "--out", out,
              "--rationales", stage1, "--epochs", "1", "--batch-size", "6", "--lr", "3e-3", *TINY_ARGS, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["metric"] == "accuracy" and 0.0 <= summary["best"]["value"] <= 100.0
    recorded = json.loads((out / "run_config.json").read_text())["rationales"]
    assert recorded["train_on"] == "gold" and recorded["train"]["mode"] == "gold"
    assert recorded["val"]["sha256"] == hashlib.sha256((stage1 / "preds-val.jsonl").read_bytes()).hexdigest()
    assert recorded["val"]["path"].endswith("preds-val.jsonl") and recorded["val"]["count"] == 6

    # A qid without a rationale is an error naming it, before any training.
    lines = (stage1 / "preds-val.jsonl").read_text().splitlines()
    (stage1 / "preds-val.jsonl").write_text("\n".join(line for line in lines if '"qid": "104"' not in line) + "\n")
    res = cli("train", "--stage", "answer", "--data", data_dir, "--text-model", "t5-scratch",
              "--out", tmp_path / "run_b", "--rationales", stage1, *TINY_ARGS)
    assert res.exit_code == 1
    assert "no rationale for qid 104" in res.stderr and "preds-val.jsonl" in res.stderr
    assert not (tmp_path / "run_b").exists()
    # An answer run's predictions (their text states the predicted answer) are not rationales.
    (stage1 / "preds-val.jsonl").write_text(json.dumps({"qid": "101", "prediction": "The answer is (A).",
                                                        "stage": "answer"}) + "\n")
    res = cli("train", "--stage", "answer", "--data", data_dir, "--text-model", "t5-scratch",
              "--out", tmp_path / "run_b", "--rationales", stage1, *TINY_ARGS)
    assert res.exit_code == 1 and "preds-val.jsonl:1: qid 101: an answer-stage prediction" in res.stderr
    assert not (tmp_path / "run_b").exists()


def test_usage_errors_exit_2(cli, data_dir, tmp_path):
    common = ["--data", data_dir, "--text-model", "t5-scratch", *TINY_ARGS]
    res = cli("train", "--stage", "answer", "--out", tmp_path / "a", *common)
    assert res.exit_code == 2 and "--rationales" in res.stderr
    res = cli("train", "--stage", "rationale", "--prompt-format", "QCM-X", "--out", tmp_path / "b", *common)
    assert res.exit_code == 2 and "prompt format" in res.stderr
    res = cli("train", "--stage", "rationale", "--lr", "0", "--out", tmp_path / "c", *common)
    assert res.exit_code == 2 and "--lr must be > 0" in res.stderr
    res = cli("train", "--stage", "rationale", "--resume", "--out", tmp_path / "d", *common)
    assert res.exit_code == 2 and "nothing to resume" in res.stderr
    res = cli("train", "--stage", "banana", "--out", tmp_path / "e", *common)
    assert res.exit_code == 2


def test_text_options_are_checked_against_the_backbone_declared_options(cli, data_dir, tmp_path):
    base = ["train", "--stage", "rationale", "--data", data_dir, "--out", tmp_path / "r"]
    res = cli(*base, "--text-model", "t5-scratch", "--text-option", "dmodel=32")
    assert res.exit_code == 2 and "unknown t5-scratch option 'dmodel'" in res.stderr
    assert "d_model (int, default 128)" in res.stderr and "vocab_size" in res.stderr  # lists the valid ones
    res = cli(*base, "--text-model", "t5-scratch", "--text-option", "layers=two")
    assert res.exit_code == 2 and "option layers: bad value 'two'" in res.stderr and "d_model" in res.stderr
    res = cli(*base, "--text-model", "t5-scratch", "--text-option", "layers")
    assert res.exit_code == 2 and "KEY=VALUE" in res.stderr
    res = cli(*base, "--text-model", "flan-t5-base", "--text-option", "d_model=32")  # declares no options
    assert res.exit_code == 2 and "valid options: none" in res.stderr
    res = cli(*base, "--text-model", "t5-scratch", "--scratch-d-model", "32")  # the old flags are gone
    assert res.exit_code == 2
    assert not (tmp_path / "r").exists()  # nothing written


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    """The last checkpoint's weights; a LoRA run's adapter weights too (as adapter:NAME)."""
    from safetensors.torch import load_file

    model = list_checkpoints(run)[-1] / "model"
    weights = load_file(str(model / "model.safetensors"))
    adapter = model / "adapter" / "adapter_model.safetensors"
    if adapter.is_file():
        weights.update({f"adapter:{k}": v for k, v in load_file(str(adapter)).items()})
    return weights


def _metric_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rows]


@pytest.mark.parametrize("lora", [{}, {"lora_r": 4, "lora_dropout": 0.1}], ids=["full", "lora"])
def test_crash_then_resume_matches_an_uninterrupted_run(data_dir, tmp_path, monkeypatch, lora):
    # 12 examples, batch 2 → 6 batches/epoch; grad_accum 2 → 3 optimizer steps/epoch; dropout on (LoRA's too).
    kw = dict(batch_size=2, grad_accum=2, save_every=2, keep_checkpoints=10, epochs=2, warmup_ratio=0.2, **lora)
    straight = train(tiny_cfg(data_dir, tmp_path / "straight", **kw))
    assert straight["steps"] == 6

    real_save = train_mod.save_checkpoint

    def crash_after_step_4(run_dir, **kwargs):
        path = real_save(run_dir, **kwargs)
        if kwargs["state"]["global_step"] == 4:  # mid-epoch 2: position (epoch 1, batch 2)
            raise RuntimeError("simulated crash")
        return path

    monkeypatch.setattr(train_mod, "save_checkpoint", crash_after_step_4)
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_cfg(data_dir, crashed, **kw))
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    state = json.loads((list_checkpoints(crashed)[-1] / "state.json").read_text())
    assert (state["epoch"], state["batch"], state["global_step"]) == (1, 2, 4)

    resumed = train(tiny_cfg(data_dir, crashed, resume=True, **kw))
    assert resumed["resumed_from"].endswith("step-00000004") and resumed["steps"] == 6
    a, b = _final_weights(tmp_path / "straight"), _final_weights(crashed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name
    assert _metric_rows(tmp_path / "straight") == _metric_rows(crashed)
    assert resumed["best"] == straight["best"]
    # Resuming a finished run is a no-op that keeps the result.
    again = train(tiny_cfg(data_dir, crashed, resume=True, **kw))
    assert again["steps"] == 6 and _metric_rows(crashed) == _metric_rows(tmp_path / "straight")


def test_resume_refuses_changed_hyperparameters(data_dir, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(data_dir, out, epochs=1, val_split=None))
    with pytest.raises(Exception, match="different lr"):
        train(tiny_cfg(data_dir, out, epochs=1, val_split=None, lr=1e-2, resume=True))
    # The model's shape comes from the checkpoint: another --text-option would be silently ignored.
    with pytest.raises(Exception, match="different text_options"):
        train(tiny_cfg(data_dir, out, epochs=2, val_split=None, resume=True, text_options={**TINY, "d_model": 64}))
    # Without validation, model/ holds the last model.
    assert (out / "model" / "model.safetensors").is_file()


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(cli, data_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_mod._compute_loss

    def nan_on_third_batch(model, batch):
        calls["n"] += 1
        loss = real(model, batch)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_mod, "_compute_loss", nan_on_third_batch)
    out = tmp_path / "run"
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out", out,
              "--epochs", "2", "--batch-size", "4", "--save-every", "1", *TINY_ARGS)
    assert res.exit_code == 1
    message = res.stderr.strip().splitlines()[-1]  # after epoch 1's progress line: the error, in one line
    assert "Traceback" not in res.stderr and "loss is nan" in message and "step-00000002" in message
    assert [p.name for p in list_checkpoints(out)] == ["step-00000001", "step-00000002"]

    with pytest.raises(TrainingDiverged):
        calls["n"] = 0
        train(tiny_cfg(data_dir, tmp_path / "lib", epochs=1))


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(data_dir, tmp_path):
    """A real `kill -9` of `mmcot train` (at whatever point it is, checkpoint writes included), then `--resume`."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    def command(out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "mmcot_cli", "-q", "train", "--stage", "rationale", "--data", str(data_dir),
                "--text-model", "t5-scratch", *TINY_ARGS, "--out", str(out), "--epochs", "40", "--batch-size", "4",
                "--lr", "3e-3", "--max-output-len", "12", "--val-split", "none", "--save-every", "3", *extra]

    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    subprocess.run(command(straight), env=env, check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(command(crashed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list_checkpoints(crashed)) >= 2:  # mid-training, somewhere after its second checkpoint
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL

    resumed = subprocess.run(command(crashed, "--resume", "--json"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_from"] and summary["steps"] == 120  # 12 examples / batch 4 × 40 epochs
    a = load_file(str(straight / "model" / "model.safetensors"))
    b = load_file(str(crashed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name


def test_feature_store_without_the_train_split_is_an_error(cli, data_dir, tmp_path):
    from mmcot_cli.features.store import import_features

    for split in ("train", "val"):  # give every problem an image, so each one needs a feature row
        rows = [json.loads(line) for line in (data_dir / f"{split}.jsonl").read_text().splitlines()]
        write_split(data_dir, split, [{**r, "image": "image.png", "image_paths": ["/x/image.png"]} for r in rows])
    feats_dir = tmp_path / "val_only"
    import_features(feats_dir, backbone="patches", split="val", qids=[str(q) for q in range(101, 107)],
                    features=torch.zeros(6, 4, 8).numpy(), dtype="float32")
    out = tmp_path / "run"
    res = cli("-q", "train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out", out,
              "--features", feats_dir, "--epochs", "1", *TINY_ARGS)
    assert res.exit_code == 1 and "no features for qid 1 " in res.stderr and "'train'" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert not out.exists()


def test_resume_from_a_damaged_optimizer_file_is_one_line_error(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    args = ["-q", "train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out", out,
            "--epochs", "1", "--batch-size", "4", "--val-split", "none", *TINY_ARGS]
    assert cli(*args).exit_code == 0
    ckpt = list_checkpoints(out)[-1]
    (ckpt / "optimizer.pt").write_bytes(b"bad")
    res = cli(*args[:-len(TINY_ARGS)], "--epochs", "2", *TINY_ARGS, "--resume")
    assert res.exit_code == 1 and f"{ckpt / 'optimizer.pt'}: cannot read" in res.stderr
    assert res.stderr.strip().count("\n") == 0


def test_summary_table_does_not_claim_validation_with_eval_every_0(cli, data_dir, tmp_path):
    """--eval-every 0 (stage 1 as the original's --final_eval): the table says the run was not validated instead of
    showing a val example count that was never used."""
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out",
              tmp_path / "run", "--epochs", "1", "--batch-size", "4", "--max-output-len", "8", "--eval-every", "0",
              *TINY_ARGS, terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "not validated (last model kept)" in res.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").read_text().count("val_")


def test_validation_decodes_answers_as_generate_does(cli, data_dir, tmp_path):
    # The best-model metric was taken on free decoding while `generate` decodes within the options: an
    # undertrained model scored 0 in validation and 30 % on test. Now validation's accuracy is generate's.
    out = tmp_path / "qcma"
    res = cli("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data_dir, "--text-model",
              "t5-scratch", "--out", out, "--epochs", "1", "--batch-size", "4", "--max-output-len", "8", *TINY_ARGS)
    assert res.exit_code == 0, res.output
    val_accuracy = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["val_accuracy"]
    assert cli("-q", "generate", "--run", out, "--data", data_dir, "--split", "val").exit_code == 0
    scored = json.loads(cli("score", out / "preds-val.jsonl", "--data", data_dir, "--split", "val", "--json").stdout)
    assert scored["acc_average"] == round(val_accuracy, 2)
