"""Vision backbone plugins and image loading: shapes, dtype, determinism, RGB conversion, offline builds.

The default architectures (DETR R101-DC5, CLIP RN50, ViT-L/32, ResNet-50) are each built once with random
weights (module-scoped fixtures) under a socket guard: building must never reach the network.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcot_cli.data.images import ImageError, load_rgb, record_image, to_rgb
from mmcot_cli.errors import MMCoTError, UsageError
from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import VisionBuildOptions

DEFAULT_SHAPES = {"patches": (49, 192), "detr": (100, 256), "clip": (49, 2048), "vit": (145, 1024),
                  "resnet": (1, 2048)}


@contextlib.contextmanager
def no_network():
    """Any attempt to open a connection fails loudly (HF_HUB_OFFLINE alone would only make it fail politely)."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    try:
        yield
    finally:
        mp.undo()


def as_batch(tensors: list) -> torch.Tensor | list:
    """As the extractor batches: stacked when the images preprocess to one shape, else a list (detr)."""
    from mmcot_cli.features.extract import _collate

    return _collate([(i, t, None, None) for i, t in enumerate(tensors)])[1]


def make_odd_pngs(folder: Path) -> dict[str, Path]:
    """PNGs in the modes ScienceQA has: palette with transparency, RGBA, grayscale, 16-bit grayscale."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    rgb = rng.integers(0, 256, size=(60, 90, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.info["transparency"] = 0
    paths["P"] = folder / "palette.png"
    pal.save(paths["P"], transparency=0)
    rgba = np.concatenate([rgb, np.full((60, 90, 1), 255, np.uint8)], axis=2)
    rgba[:10, :10, 3] = 0  # a transparent corner
    paths["RGBA"] = folder / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(paths["RGBA"])
    paths["L"] = folder / "gray.png"
    Image.fromarray(rgb[:, :, 0], "L").save(paths["L"])
    paths["I;16"] = folder / "gray16.png"
    Image.fromarray(rgb[:, :, 1].astype(np.uint16) * 257).save(paths["I;16"])
    return paths


@pytest.fixture(scope="module")
def odd_pngs(tmp_path_factory) -> dict[str, Path]:
    return make_odd_pngs(tmp_path_factory.mktemp("odd"))


@pytest.fixture(scope="module")
def generated_images(odd_pngs) -> list[Image.Image]:
    return [load_rgb(p) for p in odd_pngs.values()]


def real_images(sample_dir: Path, n: int = 2) -> list[Image.Image]:
    paths = sorted((sample_dir / "images").glob("*/image.png"))[:n]
    if not paths:
        pytest.skip("no images in the sample")
    return [load_rgb(p) for p in paths]


# ------------------------------------------------------------------------------------------- image loading


def test_odd_png_modes_load_as_rgb(odd_pngs):
    opened = {mode: Image.open(p).mode for mode, p in odd_pngs.items()}
    assert opened["P"] == "P" and opened["RGBA"] == "RGBA" and opened["L"] == "L"
    assert opened["I;16"] in ("I;16", "I")  # Pillow versions differ in how 16-bit PNGs open
    for p in odd_pngs.values():
        im = load_rgb(p)
        assert im.mode == "RGB" and im.size == (90, 60)


def test_transparency_becomes_white_and_16bit_is_rescaled(odd_pngs):
    rgba = np.asarray(load_rgb(odd_pngs["RGBA"]))
    assert (rgba[:10, :10] == 255).all()
    pal = Image.open(odd_pngs["P"])
    index0 = np.asarray(pal) == 0
    assert index0.any() and (np.asarray(load_rgb(odd_pngs["P"]))[index0] == 255).all()
    sixteen = np.asarray(load_rgb(odd_pngs["I;16"]))[:, :, 0]
    eight = np.asarray(Image.open(odd_pngs["L"]))  # the 16-bit file holds the green channel × 257
    src = np.random.default_rng(0).integers(0, 256, size=(60, 90, 3), dtype=np.uint8)[:, :, 1]
    assert np.array_equal(sixteen, src) and not np.array_equal(sixteen, eight)
    assert to_rgb(Image.new("LA", (2, 2), (10, 0))).getpixel((0, 0)) == (255, 255, 255)


def test_bad_images_raise_naming_qid_and_path(tmp_path):
    broken = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    broken.write_bytes(good.read_bytes()[:60])  # truncated
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    for path, reason in [(broken, ""), (junk, "not a recognised image"), (tmp_path / "nope.png", "file not found"),
                         (tmp_path, "is a directory")]:
        with pytest.raises(ImageError) as err:
            load_rgb(path, qid="17")
        msg = str(err.value)
        assert msg.startswith("qid 17: cannot read image") and str(path) in msg and reason in msg
        assert "\n" not in msg


def test_record_image_prefers_question_image_then_first_choice(tmp_path):
    assert record_image({"qid": "1", "image_paths": ["/d/1/image.png"]}) == "/d/1/image.png"
    assert record_image({"qid": "2", "image_paths": ["/d/2/choice_0.png", "/d/2/choice_1.png"]}) == "/d/2/choice_0.png"
    assert record_image({"qid": "3", "image_paths": []}) is None
    assert record_image({"qid": "3"}) is None
    assert record_image({"qid": "4", "image_paths": ["/old/4/choice_0.png"]}, tmp_path) == str(tmp_path / "4" / "choice_0.png")


# ------------------------------------------------------------------------------------------------- patches


def test_patches_values_are_exact_cells():
    enc = plugins.get_vision_backbone("patches").build(VisionBuildOptions())
    img = Image.new("RGB", (300, 200), (255, 0, 0))
    img.paste((0, 0, 255), (150, 0, 300, 200))  # right half blue
    feats = enc.encode(torch.stack([enc.preprocess(img)]))
    assert feats.shape == (1, 49, 192) and feats.dtype == torch.float32
    cells = feats[0].reshape(7, 7, 8, 8, 3)
    assert torch.allclose(cells[:, 0], torch.tensor([1.0, -1.0, -1.0]).expand_as(cells[:, 0]))  # left column red
    assert torch.allclose(cells[:, 6], torch.tensor([-1.0, -1.0, 1.0]).expand_as(cells[:, 6]))  # right column blue
    assert feats.min() >= -1 and feats.max() <= 1
    with pytest.raises(UsageError):
        plugins.get_vision_backbone("patches").build(VisionBuildOptions(variant="big"))


# ------------------------------------------------------------------------- every plugin, default architecture


@pytest.fixture(scope="module", params=["patches", "resnet", "clip", "detr", "vit"])
def default_encoder(request):
    name = request.param
    backbone = plugins.get_vision_backbone(name)
    with no_network():
        enc = backbone.build(VisionBuildOptions(random_init=True))
    yield name, backbone, enc
    del enc


@pytest.fixture(scope="module")
def mixed_images(generated_images, request) -> list[Image.Image]:
    """Two generated odd-mode images plus one real ScienceQA image when the sample is present."""
    try:
        real = real_images(request.getfixturevalue("sample_dir"), 1)
    except pytest.skip.Exception:
        real = []
    return [generated_images[0], generated_images[3], *real]


def test_default_architecture_shapes_dtype_determinism(default_encoder, mixed_images):
    name, backbone, enc = default_encoder
    assert tuple(backbone.feature_shape) == DEFAULT_SHAPES[name] == tuple(enc.feature_shape)
    assert enc.weights in ("random-init", "")
    preprocess = pickle.loads(pickle.dumps(enc.preprocess))  # DataLoader workers get a copy
    batch = as_batch([preprocess(im) for im in mixed_images])
    assert torch.equal(batch[0], enc.preprocess(mixed_images[0]))
    out = enc.encode(batch)
    assert out.shape == (len(mixed_images), *DEFAULT_SHAPES[name]) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    again = enc.encode(batch[-1:])  # one image alone gives the same row as inside a batch
    assert torch.allclose(again[0], out[-1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out[0], out[1])  # different images, different features


def test_real_sample_images_through_patches(sample_dir):
    enc = plugins.get_vision_backbone("patches").build(VisionBuildOptions())
    images = real_images(sample_dir, 2)
    out = enc.encode(torch.stack([enc.preprocess(im) for im in images]))
    assert out.shape == (2, 49, 192) and torch.isfinite(out).all() and not torch.equal(out[0], out[1])


# ------------------------------------------------------------------------------------- variants and weights


def test_detr_random_config_is_offline_and_dilated():
    from mmcot_plugins.detr import random_init_config

    cfg = random_init_config()
    assert cfg.backbone_config.model_type == "timm_backbone" and cfg.backbone_config.backbone == "resnet101"
    assert cfg.backbone_config.output_stride == 16 and cfg.dilation
    assert (cfg.num_queries, cfg.d_model) == (100, 256)


def test_detr_preprocess_is_the_originals_resize_224(sample_dir):
    """Short side → 224, long side int(224·long/short) with no cap (hand-computed), then ToTensor + ImageNet
    normalisation: the same tensor torchvision's Resize(224)/ToTensor/Normalize (the original's) gives."""
    from mmcot_plugins.detr import DetrPreprocess
    from torchvision import transforms

    original = transforms.Compose([transforms.Resize(224), transforms.ToTensor(),
                                   transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = DetrPreprocess()(Image.new("RGB", (518, 80), (124, 116, 104)))
    assert x.shape == (3, 224, 1450)  # 224 · 518 / 80 = 1450.4 → 1450; nothing capped
    assert x.abs().max() < 0.05  # ≈ ImageNet mean → ~0
    assert DetrPreprocess()(Image.new("RGB", (100, 1000))).shape == (3, 2240, 224)
    paths = sorted(sample_dir.glob("images/*/*.png"))
    assert len(paths) >= 26
    long_ones = 0
    for path in paths:
        image = load_rgb(path)
        w, h = image.size
        mine = DetrPreprocess()(image)
        expected = (224, int(224 * w / h)) if h <= w else (int(224 * h / w), 224)  # (H, W)
        assert tuple(mine.shape) == (3, *expected), path
        assert torch.allclose(mine, original(image), atol=1e-6), path
        long_ones += max(mine.shape[1:]) > 384
    assert long_ones > 0  # the sample has images the old 384 cap changed


def test_detr_features_do_not_depend_on_batch_companions(sample_dir):
    """One image at a time, as the original: an image's row is the same alone and in a mixed-size batch."""
    from mmcot_plugins.detr import DetrEncoder
    from transformers import DetrConfig, DetrModel, TimmBackboneConfig

    cfg = DetrConfig(backbone_config=TimmBackboneConfig(backbone="resnet18", out_indices=[1, 2, 3, 4]),
                     encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
                     use_pretrained_backbone=False)
    torch.manual_seed(0)
    enc = DetrEncoder(DetrModel(cfg), "tiny", "cpu")
    images = [load_rgb(p) for p in sorted(sample_dir.glob("images/*/image.png"))[:3]]
    batch = as_batch([enc.preprocess(im) for im in images])
    assert isinstance(batch, list)  # different sizes
    together = enc.encode(batch)
    for i, im in enumerate(images):
        assert torch.equal(enc.encode(enc.preprocess(im).unsqueeze(0))[0], together[i])


def test_detr_weights_from_local_directory(tmp_path, generated_images):
    from transformers import DetrConfig, DetrModel, TimmBackboneConfig

    cfg = DetrConfig(backbone_config=TimmBackboneConfig(backbone="resnet18", out_indices=[1, 2, 3, 4]),
                     encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
                     use_pretrained_backbone=False)
    torch.manual_seed(0)
    DetrModel(cfg).save_pretrained(tmp_path / "tiny-detr")
    backbone = plugins.get_vision_backbone("detr")
    with no_network():
        enc = backbone.build(VisionBuildOptions(weights=str(tmp_path / "tiny-detr")))
        enc2 = backbone.build(VisionBuildOptions(weights=str(tmp_path / "tiny-detr")))
    x = as_batch([enc.preprocess(im) for im in generated_images[:2]])
    out = enc.encode(x)
    assert enc.weights == str(tmp_path / "tiny-detr") and out.shape == (2, 100, 256)
    assert torch.equal(out, enc2.encode(x))  # the saved weights, not a fresh random init
    with pytest.raises(UsageError, match="no such file"):
        backbone.build(VisionBuildOptions(weights=str(tmp_path / "missing")))
    # a checkpoint that lacks part of the model is an error, not a silently random part
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "tiny-detr" / "model.safetensors"
    state = load_file(str(weights))
    dropped = sorted(k for k in state if "decoder.layers.0.fc1" in k)
    save_file({k: v for k, v in state.items() if k not in dropped}, str(weights), metadata={"format": "pt"})
    with no_network(), pytest.raises(MMCoTError, match=r"does not fit DETR .*2 weights missing: .*fc1"):
        backbone.build(VisionBuildOptions(weights=str(tmp_path / "tiny-detr")))


def test_vit_variant_and_local_dir_weights(tmp_path, generated_images):
    import timm
    from timm.models._hub import save_for_hf

    backbone = plugins.get_vision_backbone("vit")
    with no_network():
        enc = backbone.build(VisionBuildOptions(variant="vit_tiny_patch16_224", random_init=True))
    assert enc.feature_shape == (197, 192)
    x = torch.stack([enc.preprocess(im) for im in generated_images[:2]])
    assert x.shape == (2, 3, 224, 224) and enc.encode(x).shape == (2, 197, 192)

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    save_for_hf(model, tmp_path / "vit-tiny")
    with no_network():
        loaded = backbone.build(VisionBuildOptions(variant="vit_tiny_patch16_224", weights=str(tmp_path / "vit-tiny")))
    model.eval()
    with torch.no_grad():
        expected = model.forward_features(x)
    assert torch.allclose(loaded.encode(x), expected, atol=1e-5)
    with pytest.raises(MMCoTError, match="cannot load"):
        with no_network():
            backbone.build(VisionBuildOptions(variant="vit_tiny_patch16_224", weights="nobody/nothing"))


def test_resnet_variant_and_checkpoint_file(tmp_path, generated_images):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    save_file(model.state_dict(), str(tmp_path / "r18.safetensors"))
    backbone = plugins.get_vision_backbone("resnet")
    with no_network():
        enc = backbone.build(VisionBuildOptions(variant="resnet18", weights=str(tmp_path / "r18.safetensors")))
    x = torch.stack([enc.preprocess(im) for im in generated_images[:2]])
    out = enc.encode(x)
    assert enc.feature_shape == (1, 512) and out.shape == (2, 1, 512)
    with torch.no_grad():
        assert torch.allclose(out[:, 0], model(x), atol=1e-5)


def test_timm_checkpoint_for_another_model_and_unknown_variant_are_errors(tmp_path):
    # timm loads non-strictly once the head is dropped: a checkpoint that does not fit must not leave a
    # silently random trunk behind.
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(),
              str(tmp_path / "r18.safetensors"))
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pth")
    backbone = plugins.get_vision_backbone("resnet")
    with no_network():
        for path in ("r18.safetensors", "other.pth"):
            with pytest.raises(MMCoTError, match=rf"cannot load .*{path}"):
                backbone.build(VisionBuildOptions(variant="resnet34" if path.startswith("r18") else "resnet18",
                                                  weights=str(tmp_path / path)))
        with pytest.raises(MMCoTError, match=r"does not fit resnet18 \(\d+ weights missing: conv1.weight"):
            backbone.build(VisionBuildOptions(variant="resnet18", weights=str(tmp_path / "other.pth")))
        with pytest.raises(UsageError, match="unknown timm model 'resnet5'.*resnet50") as e:
            backbone.build(VisionBuildOptions(variant="resnet5", random_init=True))
        assert e.value.exit_code == 2


def test_clip_vit_variant_patch_tokens_from_checkpoint_file(tmp_path, generated_images):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-S-32", pretrained=None).eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "clip.pt")
    backbone = plugins.get_vision_backbone("clip")
    with no_network():
        enc = backbone.build(VisionBuildOptions(variant="ViT-S-32", weights=str(tmp_path / "clip.pt")))
    assert enc.feature_shape == (49, 384)  # 7×7 patches of a 224 image, CLS dropped
    x = torch.stack([enc.preprocess(im) for im in generated_images[:2]])
    out = enc.encode(x)
    model.visual.output_tokens = True
    with torch.no_grad():
        _, tokens = model.visual(x)
    assert out.shape == (2, 49, 384) and torch.allclose(out, tokens, atol=1e-5)


def test_backbones_are_listed_with_shapes(cli):
    import json

    result = cli("backbones", "--json")
    assert result.exit_code == 0
    vision = {b["name"]: b for b in json.loads(result.stdout)["vision"]}
    for name, shape in DEFAULT_SHAPES.items():
        assert tuple(vision[name]["feature_shape"]) == shape
    assert vision["detr"]["default_weights"] == "facebook/detr-resnet-101-dc5"
