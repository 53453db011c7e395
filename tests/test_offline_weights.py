"""Pretrained names without the weights (issue 25): offline or with no network and nothing cached, `train
--text-model flan-t5-base` and `extract --backbone` (each pretrained backbone) fail at once in one line with the
offline hint, well within 5 s once the libraries are imported; the loaders (and their retries) are never reached,
and offline mode never touches the network. (`ask`: tests/test_ask_weights.py; `import-run` / `import-features`
hub ids: tests/test_hub_import.py; `generate` loads only its RUN_DIR.)"""

from __future__ import annotations

import time

import pytest

from mmcot_cli.registry import hub
from mmcot_cli.registry.weights import require_text_weights
from tests.test_extract_cli import data_dir  # noqa: F401  (the fixture)


def _never(*args, **kwargs):
    raise AssertionError("the loader (and its network retries) must not be reached")


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture
def offline(monkeypatch, empty_cache):
    monkeypatch.setattr(hub, "is_offline", lambda: True)
    monkeypatch.setattr(hub, "hub_unreachable", _never)  # offline: not even a probe


@pytest.fixture
def no_network(monkeypatch, empty_cache):
    monkeypatch.setattr(hub, "is_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_unreachable", lambda timeout=hub.PROBE_SECONDS: "Name or service not known")


@pytest.fixture
def loaders_unreachable(monkeypatch):
    import open_clip
    import timm
    import transformers

    monkeypatch.setattr(timm, "create_model", _never)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", _never)
    for name in ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "DetrModel"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", _never)


def _one_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("network", ["offline", "no_network"])
def test_train_pretrained_name_fails_at_once(cli, data_dir, tmp_path, network, request,  # noqa: F811
                                             loaders_unreachable):
    request.getfixturevalue(network)
    start = time.monotonic()
    line = _one_line(cli("train", "--text-model", "flan-t5-base", "--data", data_dir, "--out", tmp_path / "r",
                         "--stage", "rationale"))
    assert time.monotonic() - start < 5
    assert "cannot load google/flan-t5-base: not in the Hugging Face cache" in line
    assert ("HF_HUB_OFFLINE is set" if network == "offline" else "the Hub cannot be reached (Name or service") in line
    assert "--text-model DIR" in line and "fill the cache once with the network" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("network", ["offline", "no_network"])
@pytest.mark.parametrize(("backbone", "extra", "repo"), [
    ("vit", [], "timm/vit_large_patch32_384"), ("resnet", [], "timm/resnet50"),
    ("detr", [], "facebook/detr-resnet-101-dc5"), ("clip", [], "timm/resnet50_clip.openai"),
    ("clip", ["--variant", "ViT-B-32", "--weights", "laion2b_s34b_b79k"], "laion/CLIP-ViT-B-32-laion2B-s34B-b79K")])
def test_extract_pretrained_backbone_fails_before_building(cli, data_dir, tmp_path, network, request,  # noqa: F811
                                                           loaders_unreachable, backbone, extra, repo):
    request.getfixturevalue(network)
    start = time.monotonic()
    line = _one_line(cli("extract", "--backbone", backbone, *extra, "--data", data_dir, "--out", tmp_path / "f"))
    assert time.monotonic() - start < 5
    assert f"backbone {backbone}" in line and f"cannot load {repo}" in line and "not in the Hugging Face cache" in line
    assert "--weights PATH" in line and "--random-init" in line
    assert not (tmp_path / "f").exists()


def test_cached_or_local_weights_are_not_refused(monkeypatch, empty_cache, tmp_path):
    monkeypatch.setattr(hub, "is_offline", lambda: True)
    monkeypatch.setattr(hub, "hub_unreachable", _never)
    with pytest.raises(Exception, match="flan-t5-base: not in the Hugging Face cache"):
        require_text_weights("flan-t5-base")
    snapshot = empty_cache / "models--google--flan-t5-base" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    require_text_weights("flan-t5-base")  # cached: the loader reads it
    require_text_weights("t5-scratch")  # built from scratch: no weights
    (tmp_path / "mine").mkdir()
    require_text_weights(str(tmp_path / "mine"))  # a local directory: its own checks


def test_probe_gives_a_reason_fast(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://nonexistent.invalid")
    assert hub.hub_unreachable(timeout=2)


HEAVY = ("torch", "timm", "open_clip", "transformers")
_RUN_CLI = """import runpy, sys
sys.argv = ["mmcot", *sys.argv[1:]]
try:
    runpy.run_module("mmcot_cli", run_name="__main__")
except SystemExit as e:
    code = e.code
print("exit", code, "heavy", sorted(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("backbone", ["vit", "clip"])
def test_extract_offline_fails_in_a_fresh_process_before_torch_loads(data_dir, tmp_path, backbone):  # noqa: F811
    """A fresh `python -m mmcot_cli extract` with HF_HUB_OFFLINE and an empty cache: the one line with the hint,
    exit 1, and neither torch nor the backbone's library was ever imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins"), os.environ.get("PYTHONPATH", "")])}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", _RUN_CLI.format(heavy=HEAVY), "extract", "--backbone", backbone,
                           "--data", str(data_dir), "--out", str(tmp_path / "f")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "exit 1 heavy []", (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not in the Hugging Face cache" in lines[0] and "HF_HUB_OFFLINE is set" in lines[0]
    assert "--weights PATH" in lines[0] and "--random-init" in lines[0]
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize(("weights", "variant", "random_init", "repo"), [
    (None, None, False, "timm/vit_large_patch32_384.orig_in21k_ft_in1k"),
    (None, "vit_base_patch16_224", False, "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k"),
    ("hf-hub:org/mine", None, False, "org/mine"),
    (None, "vit_small_patch16_224", False, None),  # a variant the registration does not list: checked at build
    ("augreg_tag_unlisted", None, False, None),
    (None, None, True, None)])
def test_require_backbone_weights_resolves_from_the_registration(offline, weights, variant, random_init, repo):
    from mmcot_cli.registry.weights import require_backbone_weights

    if repo is None:
        require_backbone_weights("vit", weights, variant, random_init)
        return
    with pytest.raises(Exception, match=f"cannot load {repo}: not in the Hugging Face cache"):
        require_backbone_weights("vit", weights, variant, random_init)


def test_require_backbone_weights_skips_local_paths_and_weight_free(offline, tmp_path):
    from mmcot_cli.registry.weights import require_backbone_weights

    (tmp_path / "w.safetensors").write_bytes(b"")
    require_backbone_weights("vit", str(tmp_path / "w.safetensors"))
    require_backbone_weights("clip", str(tmp_path))
    require_backbone_weights("patches")
    with pytest.raises(Exception, match="no such file or directory"):
        require_backbone_weights("vit", "./missing.safetensors")


@pytest.mark.parametrize("backbone", ["vit", "resnet", "clip", "detr"])
def test_declared_repos_are_the_libraries(backbone):
    """Each repo a registration declares is the one its library downloads from (timm's hf_hub_id, open_clip's
    pretrained table, detr's VARIANTS), as the builder's own check resolves it: the two cannot drift apart."""
    from mmcot_plugins import clip, detr, resnet, vit

    from mmcot_cli.registry.manager import get_vision_backbone
    from mmcot_cli.registry.weights import WeightSource, timm_hub_id

    repos = get_vision_backbone(backbone).pretrained_repos
    default = {"vit": vit.DEFAULT_MODEL, "resnet": resnet.DEFAULT_MODEL, "clip": clip.DEFAULT_MODEL,
               "detr": detr.DEFAULT_VARIANT}[backbone]
    assert repos[""] == repos[default]
    for key, repo in repos.items():
        variant, _, tag = (key or default).partition("/")
        if backbone == "detr":
            expected = detr.VARIANTS[variant][0]
        elif backbone == "clip":
            expected = clip._hub_repo(variant, WeightSource("tag", tag or clip.DEFAULT_PRETRAINED))
        else:
            expected = timm_hub_id(WeightSource("default", ""), variant)
        assert repo == expected, key


def test_demo_pretrained_fails_before_writing(offline, tmp_path):
    """`demo --pretrained --backbone vit` offline: the one line before the output folder exists."""
    from mmcot_cli.demo.run import DemoConfig, run_demo

    with pytest.raises(Exception, match="backbone vit: cannot load timm/vit_large_patch32_384.orig_in21k_ft_in1k"):
        run_demo(DemoConfig(out=str(tmp_path / "demo"), size="tiny", backbone="vit", random_init=False))
    assert not (tmp_path / "demo").exists()


def test_clip_default_tag_named_is_checked_early(offline):
    from mmcot_cli.registry.weights import require_backbone_weights

    with pytest.raises(Exception, match="cannot load timm/vit_base_patch32_clip_224.openai: not in the Hugging"):
        require_backbone_weights("clip", "openai", "ViT-B-32")
