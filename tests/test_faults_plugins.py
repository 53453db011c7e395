"""Fault class 8 (issue 10): plugin errors stay short. An unknown --variant is one line listing the backbone's
own variants (exit 2), never a library's whole model list."""

from __future__ import annotations

import importlib.util

import pytest
from faultkit import assert_one_error, mmcot, world  # noqa: F401 (fixture)

NEEDS = {"clip": "open_clip", "vit": "timm", "resnet": "timm", "detr": "timm"}


@pytest.mark.parametrize("backbone", ["clip", "vit", "resnet", "detr", "patches"])
def test_unknown_variant_lists_the_backbones_own_variants(world, tmp_path, backbone):
    from mmcot_cli import plugins

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
    from mmcot_cli import plugins
    from mmcot_cli.errors import UsageError

    def noisy(backbone, options):
        raise UsageError("bad thing:\n" + "\n".join(f"model-{i}" for i in range(2000)))

    monkeypatch.setattr(plugins, "_build", noisy)
    res = mmcot("extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0")
    line = assert_one_error(res, 2, "bad thing")
    assert len(line) <= 410
