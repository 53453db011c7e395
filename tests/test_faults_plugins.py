"""Fault class 8 (issue 10): plugin errors stay short. An unknown --variant is one line listing the backbone's
own variants (exit 2), never a library's whole model list."""

from __future__ import annotations

import importlib.util

import pytest
from faultkit import assert_one_error, mmcot, world  # noqa: F401 (fixture)

NEEDS = {"clip": "open_clip", "vit": "timm", "resnet": "timm", "detr": "timm"}


@pytest.mark.parametrize("backbone", ["clip", "vit", "resnet", "detr", "patches"])
def test_unknown_variant_lists_the_backbones_own_variants(world, tmp_path, backbone):
    from mmcot_cli.registry import manager as plugins

    module = NEEDS.get(backbone)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    res = mmcot("extract", "-b", backbone, "--variant", "no-such-model", "--random-init", "--data", world.data,
                "--split", "test", "--out", tmp_path / "f", "--workers", "0")
    line = assert_one_error(res, 2, f"backbone {backbone}", "'no-such-model'", "its variants")
    for variant in plugins.get_vision_backbone(backbone).variants:
        assert variant in line
    assert len(line) < 300
    assert not (tmp_path / "f").exists()


def test_long_library_messages_are_cut_to_one_line(world, tmp_path, monkeypatch):
    """Whatever a plugin raises as a user error, the CLI prints one bounded line."""
    from mmcot_cli.errors import UsageError
    from mmcot_cli.registry import manager as plugins

    def noisy(backbone, options):
        raise UsageError("bad thing:\n" + "\n".join(f"model-{i}" for i in range(2000)))

    monkeypatch.setattr(plugins, "_build", noisy)
    res = mmcot("extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0")
    line = assert_one_error(res, 2, "bad thing")
    assert len(line) <= 410


@pytest.mark.parametrize("name,needles", [("no-such-tracker", ["'no-such-tracker'", "tensorboard", "mlflow"])])
def test_unknown_tracker_is_one_short_line(world, tmp_path, name, needles):
    """train --report-to: an unknown tracker lists the known ones (exit 2) before anything is written."""
    from faultkit import TINY_TEXT

    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", tmp_path / "run", "--epochs", "1", "--val-split", "none", *TINY_TEXT,
                "--report-to", name)
    line = assert_one_error(res, 2, *needles)
    assert len(line) < 300 and not (tmp_path / "run").exists()


def test_missing_tracker_package_is_one_line(world, tmp_path, monkeypatch):
    from faultkit import TINY_TEXT

    import mmcot_cli.training.tracking as tracking

    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name, *a: None)
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", tmp_path / "run", "--epochs", "1", "--val-split", "none", *TINY_TEXT,
                "--report-to", "wandb")
    assert_one_error(res, 2, "--report-to wandb", "pip install wandb")
    assert not (tmp_path / "run").exists()
