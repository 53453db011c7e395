"""Options declared once (mmcot_cli.settings, mmcot_cli.cli.options): a setting added only as a field shows up
in --help, is checked, recorded with the run and the model and kept by --resume; --config recipes (YAML, TOML,
a run's run_config.json) with options on top, unknown keys refused, and a recorded run re-trained bit-identically."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import typer
from test_train import TINY_ARGS, data_dir  # noqa: F401  (fixture)
from typer.testing import CliRunner

from mmcot_cli.cli.options import settings_command
from mmcot_cli.cli.train import train_command
from mmcot_cli.settings import resume_keys, setting
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.validate import probability

TRAIN = ["--stage", "rationale", "--text-model", "t5-scratch", "--epochs", "1", "--batch-size", "4",
         "--val-split", "none", "--save-every", "2", *TINY_ARGS]


def _extended_app() -> typer.Typer:
    """`mmcot train` over TrainConfig plus one test-only field, declared nowhere else."""
    knob = setting(0.25, "A test-only knob, in (0, 1].", check=probability, keep_on_resume=True, record="model")
    extended = dataclasses.make_dataclass("TrainConfig", [("test_knob", float, knob)], bases=(TrainConfig,))
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command is called by name as in mmcot
    settings_command("train", on=app, settings=extended)(train_command)
    return app


def _invoke(app, *args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_a_new_field_is_an_option_checked_recorded_and_kept_on_resume(data_dir, tmp_path):  # noqa: F811
    app = _extended_app()
    shown = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert "--test-knob" in shown.stdout and "A test-only knob" in shown.stdout and "0.25" in shown.stdout
    bad = _invoke(app, "train", *TRAIN, "--data", data_dir, "--out", tmp_path / "bad", "--test-knob", "2")
    assert bad.exit_code == 2 and "--test-knob must be in (0, 1], got 2" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "run"
    assert _invoke(app, "train", *TRAIN, "--data", data_dir, "--out", run, "--test-knob", "0.5").exit_code == 0
    meta = json.loads((run / "run_config.json").read_text())
    assert meta["train_config"]["test_knob"] == 0.5 and meta["model_settings"]["test_knob"] == 0.5
    model_meta = json.loads((run / "model" / "config.json").read_text())["mmcot"]
    assert model_meta["model_settings"]["test_knob"] == 0.5
    changed = _invoke(app, "train", *TRAIN, "--data", data_dir, "--out", run, "--resume", "--test-knob", "0.7")
    assert changed.exit_code == 2 and "different test_knob (0.5 before, 0.7 now)" in changed.stderr, changed.stderr
    same = _invoke(app, "train", *TRAIN, "--data", data_dir, "--out", run, "--resume", "--test-knob", "0.5")
    assert same.exit_code == 0, same.stderr


def test_resume_keys_come_from_the_fields():
    keys = resume_keys(TrainConfig)
    assert {"lr", "seed", "text_options", "max_tokens_per_batch"} <= set(keys)
    assert not {"epochs", "resume", "out_dir", "device"} & set(keys)


def _digest(run) -> str:
    return hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "stage: rationale\nepochs: 1\nbatch-size: 4\nval_split: none\nlr: 0.003\n"
              "text_options: {d_model: 32, layers: 1, heads: 2, vocab_size: 400}\n"),
    (".toml", 'stage = "rationale"\nepochs = 1\nbatch_size = 4\nval_split = "none"\nlr = 0.003\n'
              'text_option = ["d_model=32", "layers=1", "heads=2", "vocab_size=400"]\n'),
])
def test_a_recipe_file_then_flags_on_top(cli, data_dir, tmp_path, suffix, text):  # noqa: F811
    recipe = tmp_path / f"recipe{suffix}"
    recipe.write_text(text)
    run = tmp_path / "run"
    res = cli("train", "--config", recipe, "--data", data_dir, "--text-model", "t5-scratch", "--out", run,
              "--lr", "0.002")
    assert res.exit_code == 0, res.stderr
    recorded = json.loads((run / "run_config.json").read_text())["train_config"]
    assert recorded["lr"] == 0.002 and recorded["batch_size"] == 4 and recorded["val_split"] is None
    assert recorded["text_options"]["d_model"] == 32


def test_unknown_recipe_key_is_one_line_listing_the_valid_ones(cli, data_dir, tmp_path):  # noqa: F811
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stage: rationale\nlearning_rate: 0.1\n")
    res = cli("train", "--config", recipe, "--data", data_dir, "--text-model", "t5-scratch", "--out", tmp_path / "x")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "unknown key 'learning_rate'" in res.stderr and "lr, batch_size" in res.stderr
    assert not (tmp_path / "x").exists()
    res = cli("train", "--data", data_dir, "--text-model", "t5-scratch", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "missing option --stage" in res.stderr


def test_a_recorded_run_retrains_bit_identically_from_its_run_config(cli, data_dir, tmp_path):  # noqa: F811
    first = tmp_path / "first"
    res = cli("train", *TRAIN, "--data", data_dir, "--out", first, "--lr", "0.003", "--seed", "7")
    assert res.exit_code == 0, res.stderr
    again = tmp_path / "again"
    res = cli("train", "--config", first / "run_config.json", "--out", again)
    assert res.exit_code == 0, res.stderr
    assert _digest(again) == _digest(first)
    before = json.loads((first / "run_config.json").read_text())["train_config"]
    after = json.loads((again / "run_config.json").read_text())["train_config"]
    assert {**before, "out_dir": None} == {**after, "out_dir": None}


def test_resume_takes_two_spellings_of_one_path_as_the_same(tmp_path, monkeypatch):
    """--features given relative when training and absolute when resuming is the same store, not a change."""
    (tmp_path / "feats").mkdir()
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    base = dict(stage="rationale", data_dir="data", text_model="t5-scratch", out_dir="run")
    saved = dataclasses.asdict(TrainConfig(**base, features="feats"))
    assert TrainConfig(**base, features=str(tmp_path / "feats")).changed_since(saved) is None
    assert TrainConfig(**base, features="./feats/").changed_since(saved) is None
    changed = TrainConfig(**base, features=str(tmp_path / "other")).changed_since(saved)
    assert changed is not None and changed[0] == "features"
    assert TrainConfig(**base, features="feats", lr=1e-3).changed_since(saved)[0] == "lr"
