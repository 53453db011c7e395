"""The plugin system: entry-point loading, third-party registration, lookup errors, `mmcot backbones`."""

import json
import sys
import types
from pathlib import Path

import pytest

from mmcot_cli.errors import UnknownBackboneError
from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import TextBackbone, VisionBackbone, VisionBuildOptions, hookimpl


class _MeanColour:
    """A real (if trivial) encoder: the mean RGB colour as one token."""

    feature_shape = (1, 3)

    def preprocess(self, image):
        import torch

        return torch.tensor(list(image.convert("RGB").resize((1, 1)).getpixel((0, 0))), dtype=torch.float32)

    def encode(self, pixels):
        return (pixels / 255.0).unsqueeze(1)


def _third_party_module() -> types.ModuleType:
    mod = types.ModuleType("mmcot_test_thirdparty")

    @hookimpl
    def register_vision_backbones(register):
        register(VisionBackbone(name="mean-colour", feature_shape=(1, 3), default_weights="",
                                build=lambda options: _MeanColour(), description="test plugin"))

    @hookimpl
    def register_text_backbones(register):
        register(TextBackbone(name="my-t5", weights="someorg/my-t5", description="test plugin"))

    mod.register_vision_backbones = register_vision_backbones
    mod.register_text_backbones = register_text_backbones
    return mod


@pytest.fixture
def third_party():
    mod = _third_party_module()
    sys.modules[mod.__name__] = mod
    plugins.register_plugin(mod, name=mod.__name__)
    yield mod
    plugins.unregister_plugin(mod)
    sys.modules.pop(mod.__name__, None)


def test_third_party_plugin_is_listed(cli, third_party):
    result = cli("backbones", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    vision = {b["name"]: b for b in data["vision"]}
    text = {b["name"]: b for b in data["text"]}
    assert vision["mean-colour"]["feature_shape"] == [1, 3]
    assert vision["mean-colour"]["plugin"] == "mmcot_test_thirdparty"
    assert text["my-t5"]["weights"] == "someorg/my-t5"
    assert vision["patches"]["weight_free"] and not vision["vit"]["weight_free"]
    # declared text options are what `--text-option` is checked against
    scratch = {o["name"]: o for o in text["t5-scratch"]["options"]}
    assert scratch["d_model"]["type"] == "int" and scratch["d_model"]["default"] == 128
    assert text["my-t5"]["options"] == []
    backbone = plugins.get_vision_backbone("mean-colour")
    from PIL import Image

    encoder = backbone.build(VisionBuildOptions(random_init=True))
    feats = encoder.encode(encoder.preprocess(Image.new("RGB", (4, 4), (255, 0, 0))).unsqueeze(0))
    assert feats.shape == (1, 1, 3) and feats[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_third_party_plugin_gone_after_unregister(cli):
    mod = _third_party_module()
    plugins.register_plugin(mod, name=mod.__name__)
    plugins.unregister_plugin(mod)
    assert "mean-colour" not in plugins.vision_backbones()


def test_misspelled_hook_is_an_error():
    import pluggy

    mod = types.ModuleType("mmcot_test_typo")

    @hookimpl
    def register_vision_backbone(register):  # missing the final "s"
        pass

    mod.register_vision_backbone = register_vision_backbone
    with pytest.raises(pluggy.PluginValidationError):
        plugins.register_plugin(mod, name=mod.__name__)
    plugins.get_plugin_manager().unregister(name=mod.__name__)


def test_unknown_vision_backbone_lists_available():
    with pytest.raises(UnknownBackboneError) as err:
        plugins.get_vision_backbone("no-such-backbone")
    assert "no-such-backbone" in str(err.value)
    assert err.value.exit_code == 2
    for name in plugins.vision_backbones():
        assert name in str(err.value)


def test_text_backbone_accepts_local_dir_and_hub_id(tmp_path):
    assert plugins.get_text_backbone(str(tmp_path)).weights == str(tmp_path)
    assert plugins.get_text_backbone("someorg/some-t5").weights == "someorg/some-t5"
    with pytest.raises(UnknownBackboneError) as err:
        plugins.get_text_backbone("not-a-backbone")
    assert "local directory" in str(err.value)


def test_backbones_table(cli, third_party):
    result = cli("backbones")
    assert result.exit_code == 0
    assert "mean-colour" in result.stdout and "my-t5" in result.stdout


def test_random_init_vision_encoders_are_reproducible():
    """Shards, resumed runs and `mmcot ask` rebuild a random-init encoder: it must be the same network."""
    import torch

    backbone = plugins.get_vision_backbone("resnet")
    options = VisionBuildOptions(random_init=True)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = plugins.build_vision_encoder(backbone, options)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG stream is untouched
    second = plugins.build_vision_encoder(backbone, options)
    pixels = torch.rand(1, 3, 64, 64)
    assert torch.equal(first.encode(pixels), second.encode(pixels))


def test_builtin_plugins_are_registered_in_code():
    # DEFAULT_PLUGINS is the one list: every public module in plugins/mmcot_plugins/ must be on it, and none of
    # them needs an entry point (those are for third-party plugins)
    from importlib.metadata import entry_points

    builtin = {module for _, module in plugins.DEFAULT_PLUGINS}
    folder = Path(__file__).parents[1] / "plugins" / "mmcot_plugins"
    assert builtin == {f"mmcot_plugins.{p.stem}" for p in folder.glob("[!_]*.py")}
    assert not builtin & {ep.value for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    registered = {getattr(p, "__name__", None) for p in plugins.get_plugin_manager().get_plugins()}
    assert builtin <= registered
    assert {"patches", "detr", "clip", "vit", "resnet"} <= set(plugins.vision_backbones())
    assert {"unifiedqa-t5-base", "flan-t5-large", "flan-alpaca-base", "t5-scratch"} <= set(plugins.text_backbones())


def test_console_script_usage_errors_are_one_line_exit_2():
    """Bad option values through the real entry point: one stderr line, exit 2 (not a usage box)."""
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args, needle in ((["train", "--epochs", "0"], "--epochs"), (["--bogus"], "--bogus"),
                         (["nope"], "nope"), (["score"], "predictions")):
        res = subprocess.run([sys.executable, "-m", "mmcot_cli", *args], capture_output=True, text=True, env=env)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
        assert res.stdout == ""
