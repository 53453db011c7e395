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
