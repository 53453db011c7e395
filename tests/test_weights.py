"""The weight policy written once (mmcot_cli/registry/weights.py) and the weight-free property a backbone declares."""

from __future__ import annotations

import pytest

from mmcot_cli.errors import MMCoTError, UsageError
from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import VisionBuildOptions
from mmcot_cli.registry.weights import OFFLINE_HINT, loading, resolve_weights


def test_resolve_weights_kinds(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    cases = {
        None: ("default", "org/default"),
        str(tmp_path / "dir"): ("local-dir", str((tmp_path / "dir").resolve())),
        str(tmp_path / "ckpt.pt"): ("file", str((tmp_path / "ckpt.pt").resolve())),
        "facebook/detr-resnet-50": ("hub", "facebook/detr-resnet-50"),
        "hf-hub:timm/vit_tiny": ("hub", "timm/vit_tiny"),
        "laion2b_s34b_b79k": ("tag", "laion2b_s34b_b79k"),
    }
    for given, (kind, value) in cases.items():
        source = resolve_weights("b", given, default="org/default")
        assert (source.kind, source.value) == (kind, value), given
    assert resolve_weights("b", None, random_init=True).kind == "random-init"


def test_resolve_weights_refusals(tmp_path):
    with pytest.raises(UsageError, match="backbone vit: give either --random-init or --weights, not both"):
        resolve_weights("vit", "org/x", random_init=True)
    for missing in (str(tmp_path / "nope"), "./nope", "~/definitely-not-here-mmcot"):
        with pytest.raises(UsageError, match=r"backbone clip: --weights .*: no such file or directory"):
            resolve_weights("clip", missing)


def test_loading_turns_library_errors_into_one_line_with_the_hint():
    with pytest.raises(MMCoTError) as e:
        with loading("detr", "org/x", "arch"):
            raise OSError("404 Client Error\nlong body")
    assert str(e.value) == f"backbone detr (arch): cannot load org/x: 404 Client Error ({OFFLINE_HINT})"
    with pytest.raises(UsageError, match="mine"):  # mmcot's own errors pass through untouched
        with loading("detr", "org/x"):
            raise UsageError("mine")


def test_weight_free_is_declared_and_enforced_by_the_core():
    backbone = plugins.get_vision_backbone("patches")
    assert backbone.weight_free and not plugins.get_vision_backbone("vit").weight_free
    with pytest.raises(UsageError, match="backbone patches is weight-free; --weights does not apply"):
        plugins.build_vision_encoder(backbone, VisionBuildOptions(weights="org/x"))
    # random init is a no-op for a weight-free backbone: the same encoder, recorded without weights
    enc = plugins.build_vision_encoder(backbone, VisionBuildOptions(random_init=True))
    assert enc.weights == ""
