"""Transparent images: `--alpha original|white` on extract and ask. `original` drops alpha as the original's
`Image.open(p).convert("RGB")` (the colour under a transparent pixel is kept, so features match the released
files); `white` composites onto white. The policy is recorded in the store manifest and the run, and `ask` uses
the recorded one unless told otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmcot_cli.data.images import load_rgb, to_rgb
from mmcot_cli.errors import UnknownNameError
from mmcot_cli.features.store import open_store
from mmcot_cli.inference.ask import encode_ask_image, recorded_alpha
from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions
from mmcot_cli.registry.manager import get_vision_backbone
from mmcot_cli.runs.meta import RunMeta

UNDER = (10, 20, 30)  # the colour stored under the transparent pixels


def rgba_image(path):
    """Left half opaque red; right half fully transparent with colour UNDER, one transparent black pixel."""
    arr = np.zeros((64, 64, 4), dtype=np.uint8)
    arr[:, :32] = (200, 0, 0, 255)
    arr[:, 32:] = (*UNDER, 0)
    arr[0, 63] = (0, 0, 0, 0)
    Image.fromarray(arr, "RGBA").save(path)
    return path


def test_policies_on_an_rgba_image(tmp_path):
    path = rgba_image(tmp_path / "t.png")
    original = np.asarray(load_rgb(path, alpha="original"))
    white = np.asarray(load_rgb(path, alpha="white"))
    assert original[0, 63].tolist() == [0, 0, 0] and white[0, 63].tolist() == [255, 255, 255]
    assert original[10, 40].tolist() == list(UNDER) and white[10, 40].tolist() == [255, 255, 255]
    assert original[10, 5].tolist() == white[10, 5].tolist() == [200, 0, 0]
    # exactly the original's decoding, for every mode with transparency
    for image in (Image.open(path), Image.open(path).convert("LA"), Image.open(path).convert("P")):
        assert np.array_equal(np.asarray(to_rgb(image, "original")), np.asarray(image.convert("RGB")))
    pal = Image.new("P", (2, 2))
    pal.putpalette([*UNDER, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    assert to_rgb(pal, "original").getpixel((0, 0)) == UNDER and to_rgb(pal, "white").getpixel((0, 0)) == (255,) * 3
    with pytest.raises(UnknownNameError, match="original, white"):
        to_rgb(Image.open(path), "black")


def test_backbone_defaults():
    assert {name: get_vision_backbone(name).alpha for name in ("detr", "vit", "clip", "resnet", "patches")} == {
        "detr": "original", "vit": "original", "clip": "original", "resnet": "original", "patches": "white"}
    with pytest.raises(UnknownNameError):
        VisionBackbone(name="x", feature_shape=(1, 1), default_weights="", build=lambda o: None, alpha="grey")


def test_backbones_lists_the_default_policy(cli):
    listed = {b["name"]: b["alpha"] for b in json.loads(cli("backbones", "--json").stdout)["vision"]}
    assert listed["detr"] == "original" and listed["patches"] == "white"


@pytest.fixture
def rgba_data(tmp_path):
    """A DATA_DIR with one RGBA image per split (test, val)."""
    rows = {}
    for split, qid in (("test", "1"), ("val", "2")):
        folder = tmp_path / "images" / qid
        folder.mkdir(parents=True)
        rgba_image(folder / "image.png")
        rows[split] = {"qid": qid, "split": split, "question": "Q?", "hint": "", "caption": "", "choices": ["a", "b"],
                       "answer": 0, "lecture": "", "solution": "", "subject": "", "grade": "", "topic": "",
                       "category": "", "skill": "", "task": "", "image": "image.png",
                       "image_paths": [str(folder / "image.png")]}
    data = tmp_path / "data"
    data.mkdir()
    for split, row in rows.items():
        (data / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    return data


def _patches(image: Image.Image) -> np.ndarray:
    encoder = get_vision_backbone("patches").build(VisionBuildOptions())
    return encoder.encode(encoder.preprocess(image).unsqueeze(0))[0].numpy()


def test_extract_applies_and_records_the_policy(cli, rgba_data, tmp_path):
    def extract(out, split, *extra):
        return cli("extract", "-b", "patches", "--data", rgba_data, "--split", split, "--out", out, "--workers", "0",
                   "--dtype", "float32", *extra)

    image = Image.open(rgba_data.parent / "images" / "1" / "image.png")
    for policy in ("original", "white"):
        result = extract(tmp_path / policy, "test", "--alpha", policy, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["alpha"] == policy
        store = open_store(tmp_path / policy)
        assert store.alpha == policy == store.manifest["alpha"]
        expected = _patches(to_rgb(image, policy))
        assert np.allclose(store.get("1"), expected, atol=1e-6)
    assert not np.allclose(open_store(tmp_path / "original").get("1"), open_store(tmp_path / "white").get("1"))
    # patches' default is white; extending a store keeps its policy; a conflicting --alpha is refused
    assert extract(tmp_path / "default", "test").exit_code == 0 and open_store(tmp_path / "default").alpha == "white"
    assert extract(tmp_path / "original", "val").exit_code == 0
    assert open_store(tmp_path / "original").alpha == "original"
    result = extract(tmp_path / "white", "val", "--alpha", "original")
    assert result.exit_code != 0 and "alpha='white'" in result.stderr and "alpha='original'" in result.stderr
    # a store written before the policy was recorded composited onto white: it continues as white
    manifest = tmp_path / "default" / "manifest.json"
    manifest.write_text(json.dumps({k: v for k, v in json.loads(manifest.read_text()).items() if k != "alpha"}))
    assert extract(tmp_path / "default", "val", "--alpha", "original").exit_code != 0
    assert extract(tmp_path / "default", "val").exit_code == 0 and open_store(tmp_path / "default").alpha == "white"
    assert extract(tmp_path / "x", "test", "--alpha", "grey").exit_code == 2


def test_ask_uses_the_recorded_policy(tmp_path, rgba_data):
    image = str(rgba_data.parent / "images" / "1" / "image.png")
    base = dict(stage="rationale", prompt_format="QCM-E", text_backbone="t5-scratch", vision_backbone="patches",
                feature_shape=[49, 192])
    recorded = RunMeta(**base, vision_alpha="original")
    assert recorded_alpha(recorded) == "original"
    assert recorded_alpha(RunMeta(**base)) == "white"  # trained before policies were recorded
    assert recorded_alpha(RunMeta(**base, imported_from={"path": "x"})) == "original"  # the original's features
    feats = {}
    for name, info, override in (("recorded", recorded, None), ("white", recorded, "white")):
        feats[name] = encode_ask_image(info, (49, 192), image, random_init=False, device=torch.device("cpu"),
                                       cache={}, alpha=override)[0].numpy()
    assert np.allclose(feats["recorded"], _patches(load_rgb(image, alpha="original")), atol=1e-6)
    assert np.allclose(feats["white"], _patches(load_rgb(image, alpha="white")), atol=1e-6)


def test_ask_reports_the_policy_per_run(cli, tmp_path, rgba_data):
    from mmcot_cli.model.text.runs import build_model, save_run_model

    runs = {}
    for stage, fmt in (("rationale", "QCM-E"), ("answer", "QCMG-A")):
        model, tok = build_model("t5-scratch", [49, 192], train_texts=["Question: Q? Options: (A) a (B) b"] * 4,
                                 text_options={"d_model": 16, "layers": 1, "heads": 2, "d_ff": 32})
        meta = RunMeta(stage=stage, prompt_format=fmt, text_backbone="t5-scratch", vision_backbone="patches",
                       feature_shape=[49, 192], vision_alpha="original" if stage == "rationale" else "white",
                       max_input_len=64, max_output_len=4)
        runs[stage] = tmp_path / stage
        save_run_model(model, tok, runs[stage] / "model", meta.model_meta())
        meta.save(runs[stage])
    args = ["ask", "--rationale-run", runs["rationale"], "--answer-run", runs["answer"], "--question", "Q?",
            "--choices", "a|b", "--image", rgba_data.parent / "images" / "1" / "image.png", "--device", "cpu", "--json"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["rationale_run"]["alpha"], out["answer_run"]["alpha"]) == ("original", "white")
    out = json.loads(cli(*args, "--alpha", "white").stdout)
    assert (out["rationale_run"]["alpha"], out["answer_run"]["alpha"]) == ("white", "white")
    assert cli(*args, "--alpha", "grey").exit_code == 2
