"""Fault class 4 (issue 26): hostile files. An image path that names a FIFO, /dev/zero or a directory is one
line naming the qid and the file in every command that reads images (extract, ask), never a hang or an endless
read; a JSONL image path that climbs out of the dataset's folder is refused by prepare."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from faultkit import assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)


def _special(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "image.png"
        os.mkfifo(path)  # nobody ever writes: a blocking open or read would hang for ever
        return path, "FIFO"
    if kind == "dev-zero":
        path = tmp_path / "image.png"
        path.symlink_to("/dev/zero")  # endless bytes: a plain read would never end
        return path, "device"
    path = tmp_path / "image.png"
    path.mkdir()
    return path, "directory"


def _point_image(data, qid, path):
    file = data / "test.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    for row in rows:
        if row["qid"] == qid:
            row["image_paths"] = [str(path)]
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_extract_names_an_image_that_is_not_a_file(world, tmp_path, kind):
    data = world.copy("data", tmp_path)
    path, needle = _special(tmp_path, kind)
    _point_image(data, "10", path)
    out = tmp_path / "f"
    res = mmcot("extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "0")
    assert_one_error(res, 1, "qid 10", str(path), needle)
    assert not list(out.glob("chunks/*.safetensors"))
    res = mmcot("-q", "extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "0",
                "--skip-bad")  # skipped with a warning, the others extracted; the lock was released
    assert res.exit_code == 0, res.stderr


def test_extract_with_dataloader_workers_names_a_fifo_image_and_releases_its_lock(world, tmp_path):
    """The issue's case: a FIFO image hung `extract` for ever, holding its lock. With DataLoader workers (the
    default), in a real process that must end on its own: one line, then a rerun is not refused."""
    data = world.copy("data", tmp_path)
    path, needle = _special(tmp_path, "fifo")
    _point_image(data, "10", path)
    out = tmp_path / "f"
    args = ["extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "2"]
    assert_one_error(_bounded(*args), 1, "qid 10", str(path), needle)
    res = _bounded("-q", *args, "--skip-bad")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_ask_names_an_image_that_is_not_a_file(world, tmp_path, kind):
    path, needle = _special(tmp_path, kind)
    res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices",
                "a|b", "--image", path, "--device", "cpu")
    assert res.exit_code != 0 and str(path) in res.stderr and "Traceback" not in res.stderr
    assert needle in res.stderr


@pytest.mark.parametrize("image", ["../outside.png", "sub/../../outside.png"])
def test_prepare_jsonl_refuses_image_paths_leaving_the_folder(tmp_path, image):
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "outside.png").write_bytes(b"not read")
    rows = [{"id": "a", "split": "train", "question": "Q?", "choices": ["x", "y"], "answer": 0, "image": image}]
    (src / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = mmcot("prepare", "--format", "jsonl", src / "d.jsonl", "--out", tmp_path / "data")
    assert_one_error(res, 1, f"{src / 'd.jsonl'}:1", "'..'")
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- pickles: refused, never advised


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a hostile pickle does when loaded without weights_only
        return (os.system, (f"touch {self.marker}",))


def _hostile_pickle(path, marker):
    import torch

    torch.save({"weight": _Payload(marker)}, path)
    return path


def _assert_refused_safely(res, path, marker):
    line = assert_one_error(res, 1, str(path), "never runs pickled code")
    assert "weights_only" not in line and "False" not in line  # torch's unsafe advice is not repeated
    assert not marker.exists()


def test_import_run_refuses_a_hostile_pickle(tmp_path):
    from t5_layouts import make_t5_dir

    ckpt = make_t5_dir(tmp_path / "ckpt", tokenizer="json", weights="bin", tied=True)
    marker = tmp_path / "executed"
    _hostile_pickle(ckpt / "pytorch_model.bin", marker)
    res = mmcot("import-run", ckpt, "--stage", "answer", "--out", tmp_path / "run")
    _assert_refused_safely(res, ckpt / "pytorch_model.bin", marker)
    assert not (tmp_path / "run").exists()


def test_import_features_refuses_a_hostile_pickle(world, tmp_path):
    from faultkit import release_features

    _, name_map = release_features(world, tmp_path / "release")
    marker = tmp_path / "executed"
    pth = _hostile_pickle(tmp_path / "release" / "vit.pth", marker)
    res = mmcot("import-features", pth, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", tmp_path / "f")
    _assert_refused_safely(res, pth, marker)
    assert not (tmp_path / "f").exists()


def test_resume_refuses_a_hostile_optimizer_pickle(world, tmp_path):
    from faultkit import TINY_TEXT

    run = world.copy("run", tmp_path)
    (ckpt,) = (run / "checkpoints").iterdir()
    marker = tmp_path / "executed"
    _hostile_pickle(ckpt / "optimizer.pt", marker)
    res = mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data,
                "--text-model", "t5-scratch", "--out", run, "--features", world.feats, "--epochs", "2",
                "--batch-size", "8", "--limit-train", "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT,
                "--resume")
    _assert_refused_safely(res, ckpt / "optimizer.pt", marker)


@pytest.mark.parametrize("family", ["t5", "causal"])
def test_train_refuses_a_text_model_folder_with_a_hostile_pickle(world, tmp_path, family):
    """`train --text-model DIR` whose pytorch_model.bin holds pickled code: one line (it was a traceback ending in
    torch's advice to retry with weights_only=False), nothing run, no run folder."""
    if family == "t5":
        from t5_layouts import make_t5_dir

        ckpt = make_t5_dir(tmp_path / "ckpt", tokenizer="json", weights="bin", tied=True)
    else:
        from causal_layouts import make_causal_dir

        ckpt = make_causal_dir(tmp_path / "ckpt", "llama")
        (ckpt / "model.safetensors").unlink()
    marker = tmp_path / "executed"
    _hostile_pickle(ckpt / "pytorch_model.bin", marker)
    out = tmp_path / "run"
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model", ckpt,
                "--out", out, "--epochs", "1", "--limit-train", "4", "--val-split", "none")
    _assert_refused_safely(res, ckpt, marker)
    assert not out.exists()


@pytest.mark.parametrize("backbone", ["resnet", "clip"])
def test_extract_refuses_weights_file_with_a_hostile_pickle(world, tmp_path, backbone):
    """`extract --weights FILE` (timm's and open_clip's loaders): torch's refusal said "retry with
    weights_only=False"; mmcot's line does not, and no offline hint (the network is not the problem)."""
    marker = tmp_path / "executed"
    pth = _hostile_pickle(tmp_path / "weights.pth", marker)
    out = tmp_path / "f"
    res = mmcot("extract", "-b", backbone, "--weights", pth, "--data", world.data, "--split", "test", "--workers", "0",
                "--out", out)
    _assert_refused_safely(res, pth, marker)
    assert "offline" not in res.stderr and not out.exists()


def test_score_refuses_a_similarity_model_with_a_hostile_pickle(world, tmp_path):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    model = tmp_path / "minilm"
    model.mkdir()
    (model / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "they", "repel"]))
    BertTokenizer(str(model / "vocab.txt")).save_pretrained(model)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(model)
    (model / "model.safetensors").unlink()
    (model / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                      "type": "sentence_transformers.models.Transformer"}]))
    marker = tmp_path / "executed"
    _hostile_pickle(model / "pytorch_model.bin", marker)
    preds = tmp_path / "r.jsonl"
    rows = [json.loads(x) for x in (world.data / "test.jsonl").read_text().splitlines()]
    preds.write_text("".join(json.dumps({"qid": r["qid"], "prediction": "Solution: they repel.",
                                         "stage": "rationale"}) + "\n" for r in rows))
    res = mmcot("score", preds, "--data", world.data, "--similarity-model", model)
    _assert_refused_safely(res, model, marker)


# --------------------------------------------------------------------------- extreme aspect ratios


def test_detr_refuses_an_extreme_aspect_ratio_before_resizing():
    """10×20000 pixels (1.5 KB as a PNG) would become 224×448000 floats ×3 and a ResNet over it: refused (DETR sees
    the whole image, so it cannot be cut as the centre-cropping backbones below cut it)."""
    from mmcot_plugins.detr import DetrPreprocess
    from PIL import Image

    from mmcot_cli.errors import DataError

    with pytest.raises(DataError, match="aspect ratio 2000:1"):
        DetrPreprocess()(Image.new("RGB", (10, 20000)))
    assert tuple(DetrPreprocess()(Image.new("RGB", (300, 4000))).shape) == (3, 2986, 224)  # 13:1 still passes


def test_extract_detr_names_an_extreme_aspect_ratio(world, tmp_path):
    from PIL import Image

    data = world.copy("data", tmp_path)
    banner = tmp_path / "banner.png"
    Image.new("RGB", (10, 20000), (200, 10, 10)).save(banner)
    _point_image(data, "10", banner)
    res = mmcot("extract", "-b", "detr", "--random-init", "--data", data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0")
    assert_one_error(res, 1, "qid 10", str(banner), "aspect ratio")


_PREPROCESS_PEAK = """
import gc, resource, sys
import numpy as np
from PIL import Image
from mmcot_cli.registry.hookspecs import VisionBuildOptions
from mmcot_cli.registry.manager import build_vision_encoder, get_vision_backbone

backbone, variant = sys.argv[1], sys.argv[2] or None
encoder = build_vision_encoder(get_vision_backbone(backbone), VisionBuildOptions(variant=variant, random_init=True))
normal = Image.new("RGB", (400, 25), (0, 90, 200))  # 16:1, the most a centre-cropping backbone takes whole
tall = Image.new("RGB", (10, 20000), (200, 10, 10))
tall.paste((0, 200, 0), (0, 9000, 10, 11000))  # the middle differs from the ends
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = encoder.preprocess(tall)
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
same = np.array_equal(np.asarray(x), np.asarray(encoder.preprocess(tall.crop((0, 9920, 10, 10080)))))
print(grew, same, tuple(encoder.preprocess(normal).shape) == tuple(x.shape))
"""


@pytest.mark.parametrize(("backbone", "variant"), [("resnet", ""), ("vit", "vit_base_patch16_384"), ("clip", "")])
def test_centre_cropping_backbones_preprocess_an_extreme_aspect_ratio_in_bounded_memory(backbone, variant):
    """The backbones that resize the short side and centre-crop a square (timm's resnet and vit, open_clip's clip)
    cut a long side beyond 16× the short one to its middle first: a 10×20000 PNG took 464 MB (resnet) and 1.2 GB
    (vit at 384) per image before the crop threw almost all of it away. The features are those of the image's
    middle, as before."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _PREPROCESS_PEAK, backbone, variant], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    grew, same, shape = res.stdout.split()
    assert int(grew) < 64 and same == "True" and shape == "True", res.stdout


# --------------------------------------------------------------------------- input files that are FIFOs


def _fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _bounded(*args):
    """`python -m mmcot_cli ARGS` that must end on its own within a minute (a FIFO with no writer used to hang)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_prepare_names_a_declared_image_that_is_not_a_file(world, tmp_path, kind):
    """A ScienceQA image replaced by a FIFO, a link to /dev/zero or a folder: prepare (which only looks at it) says
    what is there instead of "not found", never opens it, and --skip-bad leaves the item out."""
    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    image = bench / "images" / "10" / "image.png"
    image.unlink()
    needle = {"fifo": "(a FIFO)", "dev-zero": "(a device or socket)", "directory": "is a directory"}[kind]
    if kind == "fifo":
        os.mkfifo(image)
    elif kind == "dev-zero":
        image.symlink_to("/dev/zero")
    else:
        image.mkdir()
    res = _bounded("prepare", bench, "--out", tmp_path / "data")
    assert_one_error(res, 1, str(image), "qid 10", needle)
    assert not (tmp_path / "data").exists()
    res = _bounded("-q", "prepare", bench, "--out", tmp_path / "data", "--skip-bad")
    assert res.returncode == 0, res.stderr
    qids = [json.loads(x)["qid"] for x in (tmp_path / "data" / "test.jsonl").read_text().splitlines()]
    assert qids and "10" not in qids


@pytest.mark.parametrize("case", ["source", "problems", "problems-in-folder", "problems-in-folder-detected",
                                  "jsonl-in-folder"])
def test_prepare_names_a_problems_file_that_is_a_fifo(world, tmp_path, case):
    if case == "source":
        fifo = _fifo(tmp_path / "problems.json")
        args = ["prepare", fifo, "--out", tmp_path / "d"]
    elif case == "problems":
        fifo = _fifo(tmp_path / "mine.json")
        args = ["prepare", "--problems", fifo, world.bench, "--out", tmp_path / "d"]
    elif case == "problems-in-folder":
        shutil.copy(world.bench / "pid_splits.json", tmp_path)
        fifo = _fifo(tmp_path / "problems.json")
        args = ["prepare", "--format", "scienceqa", tmp_path, "--out", tmp_path / "d"]
    elif case == "problems-in-folder-detected":  # no --format: not "cannot tell its format"
        shutil.copy(world.bench / "pid_splits.json", tmp_path)
        fifo = _fifo(tmp_path / "problems.json")
        args = ["prepare", tmp_path, "--out", tmp_path / "d"]
    else:
        fifo = _fifo(tmp_path / "src" / "a.jsonl")
        args = ["prepare", "--format", "jsonl", tmp_path / "src", "--out", tmp_path / "d"]
    assert_one_error(_bounded(*args), 1, str(fifo), "not a regular file (a FIFO)")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", ["score", "rationales"])
def test_readers_name_a_predictions_file_that_is_a_fifo(world, tmp_path, command):
    fifo = _fifo(tmp_path / "p.jsonl")
    args = ["score", fifo, "--data", world.data] if command == "score" else \
        ["rationales", "import", fifo, "--data", world.data, "--split", "test", "--out", tmp_path / "r.jsonl"]
    assert_one_error(_bounded(*args), 1, str(fifo), "not a regular file (a FIFO)")
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("image", ["https://example.com/cat.png", "-"])
def test_ask_image_that_is_a_url_or_stdin_is_one_usage_line(world, tmp_path, image):
    """`ask --image URL` read "file not found"; a URL or `-` is a usage error saying what ask reads, before any
    model is loaded; a --questions line naming a URL is FILE:LINE."""
    res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices",
                "a|b", "--image", image, "--device", "cpu")
    assert_one_error(res, 2, f"--image {image}", "URL" if "://" in image else "standard input")
    if "://" in image:
        questions = tmp_path / "q.jsonl"
        questions.write_text(json.dumps({"question": "Q?", "choices": ["a", "b"], "image": image}) + "\n")
        res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--questions", questions,
                    "--device", "cpu")
        assert_one_error(res, 1, f"{questions}:1", "is a URL")


@pytest.mark.parametrize("command", ["extract", "generate", "score", "report", "compare", "train", "prepare",
                                     "rationales", "prompts"])
def test_a_split_name_that_is_a_path_is_refused(world, tmp_path, command):
    """`--split ../data/test` read DATA_DIR/../data/test.jsonl and wrote the store's splits/../data/test.json
    and generate's RUN/preds-../data/test.jsonl (a folder "preds-.." in the run): every split option takes plain
    names only, a usage error before anything is read or written."""
    from faultkit import predictions

    data = world.copy("data", tmp_path)
    run = world.copy("run", tmp_path)
    preds = predictions(world, tmp_path / "preds.jsonl")
    bad = "../data/test"
    args = {
        "extract": ["extract", "-b", "patches", "--data", data, "--split", f"train,{bad}", "--workers", "0",
                    "--out", tmp_path / "f"],
        "generate": ["generate", "--run", run, "--data", data, "--split", bad, "--device", "cpu"],
        "score": ["score", preds, "--data", data, "--split", bad],
        "report": ["report", preds, "--data", data, "--split", bad, "--out", tmp_path / "r.html"],
        "compare": ["compare", preds, "--data", data, "--split", bad],
        "train": ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--text-model",
                  "t5-scratch", "--out", tmp_path / "r2", "--val-split", bad],
        "prepare": ["prepare", world.bench, "--out", tmp_path / "d2", "--splits", f"train,{bad}"],
        "rationales": ["rationales", "filter", preds, "--data", data, "--split", bad, "--out", tmp_path / "s.jsonl"],
        "prompts": ["prompts", data, "--split", bad],
    }[command]
    before = checksums(tmp_path)
    res = mmcot(*args)
    assert_one_error(res, 2, repr(bad), "not a plain name")
    assert checksums(tmp_path) == before and not (run / "preds-..").exists()
