"""Fault class 6 (issue 26): tampered runs and checkpoints. A model.safetensors that lost a tensor, or a
config.json edited after training (another d_ff, more layers), is one line naming the directory and the tensor
in every command that loads a run (generate, ask, train --resume, import-run) or a pretrained checkpoint
(train --text-model DIR), never a model whose missing parts were initialised randomly; nothing is written."""

from __future__ import annotations

import json
import shutil

import pytest
from faultkit import TINY_TEXT, assert_one_error, checksums, leftovers, mmcot, world  # noqa: F401 (fixture)


def _drop_tensor(model_dir, name="encoder.block.0.layer.1.DenseReluDense.wi.weight"):
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    state = load_file(path)
    del state[name]
    save_file(state, path, metadata={"format": "pt"})
    return name


def _edit_config(model_dir, **changes):
    path = model_dir / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


TAMPERINGS = {
    "lost-tensor": (lambda d: _drop_tensor(d), "weights missing from model.safetensors: encoder.block.0"),
    "other-d_ff": (lambda d: _edit_config(d, d_ff=64), "config.json gives [64, 16]"),
    "more-layers": (lambda d: _edit_config(d, num_layers=2), "encoder.block.1."),
    "fewer-layers": (lambda d: _edit_config(d, num_layers=0, num_decoder_layers=0), "has no place for"),
}


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_generate_refuses_a_tampered_run(world, tmp_path, kind):
    run = world.copy("run", tmp_path)
    tamper, needle = TAMPERINGS[kind]
    tamper(run / "model")
    before = checksums(run)
    res = mmcot("generate", "--run", run, "--data", world.data, "--device", "cpu", "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, str(run / "model"), needle, "restore the run")
    assert not (tmp_path / "p.jsonl").exists() and checksums(run) == before


@pytest.mark.parametrize("kind", ["lost-tensor", "other-d_ff"])
def test_ask_refuses_a_tampered_run(world, tmp_path, kind):
    run = world.copy("run", tmp_path)
    tamper, needle = TAMPERINGS[kind]
    tamper(run / "model")
    res = mmcot("ask", "--rationale-run", run, "--answer-run", run, "--question", "Q?", "--choices", "a|b",
                "--device", "cpu")
    assert_one_error(res, 1, str(run / "model"), needle)
    assert res.stdout == ""


@pytest.mark.parametrize("kind", ["lost-tensor", "more-layers"])
def test_resume_refuses_a_tampered_checkpoint(world, tmp_path, kind):
    run = world.copy("run", tmp_path)
    (ckpt_model,) = (run / "checkpoints").glob("*/model")
    tamper, needle = TAMPERINGS[kind]
    tamper(ckpt_model)
    before = checksums(run)
    res = mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data,
                "--text-model", "t5-scratch", "--out", run, "--features", world.feats, "--epochs", "2",
                "--batch-size", "8", "--limit-train", "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT,
                "--resume")
    assert_one_error(res, 1, str(ckpt_model), needle)
    assert checksums(run) == before and leftovers(run) == []


@pytest.mark.parametrize("family", ["t5", "causal"])
@pytest.mark.parametrize("kind", ["lost-tensor", "other-width"])
def test_train_refuses_a_tampered_pretrained_checkpoint(world, tmp_path, family, kind):
    """`train --text-model DIR` where DIR lost a tensor (a run's model folder, a downloaded checkpoint) or its
    config.json was edited: it trained on with those weights randomly initialised (transformers' load report
    aside); now one line naming the folder and the tensor, and no run folder."""
    if family == "t5":
        ckpt = world.copy("run", tmp_path) / "model"
        lost, edit = "encoder.block.0.layer.1.DenseReluDense.wi.weight", {"d_ff": 64}
    else:
        from causal_layouts import make_causal_dir

        ckpt = make_causal_dir(tmp_path / "ckpt", "llama")
        lost, edit = "model.layers.1.mlp.up_proj.weight", {"intermediate_size": 128}
    if kind == "lost-tensor":
        _drop_tensor(ckpt, lost)
        needle = f"weights missing from the checkpoint (1): {lost}"
    else:
        _edit_config(ckpt, **edit)
        needle = "but config.json gives"
    out = tmp_path / "run2"
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model", ckpt,
                "--out", out, "--epochs", "1", "--batch-size", "8", "--limit-train", "8", "--val-split", "none")
    assert_one_error(res, 1, str(ckpt), needle)
    assert not out.exists()


def test_an_untampered_run_still_loads(world):
    from mmcot_cli.model.text.runs import load_run_model

    model, _, meta = load_run_model(world.run)
    assert meta["stage"] == "answer" and model.fusion is not None


def test_import_run_refuses_a_checkpoint_that_lost_a_tensor(tmp_path):
    """A T5 checkpoint (safetensors) lacking one tensor its config needs: one line naming the checkpoint."""
    from t5_layouts import make_t5_dir

    ckpt = make_t5_dir(tmp_path / "ckpt", tokenizer="json", weights="safetensors", tied=True)
    _drop_tensor(ckpt, "decoder.final_layer_norm.weight")
    res = mmcot("import-run", ckpt, "--stage", "answer", "--out", tmp_path / "run")
    assert_one_error(res, 1, str(ckpt), "decoder.final_layer_norm.weight", "missing")
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []


def test_a_safetensors_header_that_lies_is_named(world, tmp_path):
    """A header promising more bytes than the file holds: named, not read past the end."""
    run = world.copy("run", tmp_path)
    path = run / "model" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    res = mmcot("generate", "--run", run, "--data", world.data, "--device", "cpu", "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, "model.safetensors")
    assert not (tmp_path / "p.jsonl").exists()


# --------------------------------------------------------------------------- a store of other images


def _other_image_data(world, tmp_path, qid="10"):
    """A copy of the benchmark whose image for `qid` is another picture, prepared as a new DATA_DIR."""
    from PIL import Image

    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    (image,) = (bench / "images" / qid).glob("*.png")
    Image.new("RGB", (40, 30), (1, 2, 3)).save(image)
    assert mmcot("-q", "prepare", bench, "--out", tmp_path / "data").exit_code == 0
    return tmp_path / "data", image


def test_generate_refuses_a_store_of_other_images_under_the_same_qids(world, tmp_path):
    data, image = _other_image_data(world, tmp_path)
    res = mmcot("generate", "--run", world.run, "--data", data, "--device", "cpu", "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, str(world.feats), "qid 10", str(image), "another image")
    assert not (tmp_path / "p.jsonl").exists()
    ok = mmcot("-q", "generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out",
               tmp_path / "q.jsonl")  # the data it was extracted from still serves
    assert ok.exit_code == 0, ok.stderr


def test_train_refuses_a_store_of_other_images_under_the_same_qids(world, tmp_path):
    data, image = _other_image_data(world, tmp_path)
    res = mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--text-model",
                "t5-scratch", "--out", tmp_path / "run", "--features", world.feats, "--epochs", "1",
                "--train-split", "test", "--val-split", "none", *TINY_TEXT)
    assert_one_error(res, 1, "qid 10", str(image))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize("merged", [False, True], ids=["chunks", "merged"])
def test_an_image_fixed_after_skip_bad_is_extracted_by_the_rerun(world, tmp_path, merged):
    from mmcot_cli.features.store import open_store

    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    (image,) = (bench / "images" / "10").glob("*.png")
    good = image.read_bytes()
    image.write_bytes(good[:40])  # a broken file
    assert mmcot("-q", "prepare", bench, "--out", tmp_path / "data").exit_code == 0
    args = ["-q", "extract", "-b", "patches", "--data", tmp_path / "data", "--split", "test", "--out",
            tmp_path / "f", "--workers", "0", "--chunk-size", "4", "--skip-bad"]
    assert mmcot(*args).exit_code == 0
    if merged:
        assert mmcot("-q", "extract", "--merge", tmp_path / "f").exit_code == 0
    assert open_store(tmp_path / "f").bad_qids() == {"10"}
    image.write_bytes(good)  # fixed
    res = mmcot(*args)
    assert res.exit_code == 0, res.stderr
    store = open_store(tmp_path / "f")
    assert store.bad_qids() == set() and store.has("10")
    reference = open_store(world.feats).read("10")
    assert (store.read("10") == reference).all()
    assert mmcot(*args).exit_code == 0 and open_store(tmp_path / "f").has("10")  # nothing left to retry


# --------------------------------------------------------------------------- readers beside writers (class 8)


def test_a_reader_opened_before_a_merge_reads_the_merged_store(world, tmp_path):
    """`generate` opens the store, then `extract --merge` replaces its chunks by shards: the reader takes the
    store anew and reads the same rows (it used to stop on a vanished chunk file)."""
    import numpy as np

    from mmcot_cli.features.store import open_store

    feats = world.copy("feats", tmp_path)
    reader = open_store(feats)
    qids = reader.qids()
    before = {q: open_store(world.feats).read(q) for q in qids}
    assert mmcot("-q", "extract", "--merge", feats).exit_code == 0
    assert not list((feats / "chunks").glob("*.safetensors"))  # every chunk file the reader knew is gone
    for q in qids:
        assert np.array_equal(reader.read(q), before[q])
    assert all(f.name.startswith("shards/") for f in reader.files)


def test_resume_refuses_a_store_extracted_again_from_other_images(world, tmp_path):
    """The store re-extracted (same path, same qids and chunks) after an image of the training split was replaced
    in place: the DATA_DIR's files are unchanged and the store matches the images now, but the run trained on the
    old pictures, so --resume is one line (by the rows' image digests); --allow-changed-data continues."""
    from PIL import Image

    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    data, feats, run = tmp_path / "data", tmp_path / "feats", tmp_path / "run"
    extract = ["-q", "extract", "-b", "patches", "--data", data, "--split", "train", "--out", feats, "--workers", "0",
               "--chunk-size", "8"]
    train = ["-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--text-model",
             "t5-scratch", "--out", run, "--features", feats, "--batch-size", "8", "--limit-train", "8",
             "--val-split", "none", "--save-every", "1", *TINY_TEXT]
    for args in (["-q", "prepare", bench, "--out", data], extract, [*train, "--epochs", "1"]):
        res = mmcot(*args)
        assert res.exit_code == 0, res.stderr
    shutil.rmtree(feats)  # extracted again from the same images: the same store, resume goes on
    assert mmcot(*extract).exit_code == 0
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    image = next(r["image_paths"][0] for r in rows if r.get("image_paths"))
    Image.new("RGB", (40, 30), (200, 10, 10)).save(image)  # another picture under the same qid and path
    shutil.rmtree(feats)
    assert mmcot(*extract).exit_code == 0
    before = checksums(run)
    res = mmcot(*train, "--epochs", "2", "--resume")
    assert_one_error(res, 2, str(run), str(feats.resolve()), "other images than the run trained on")
    assert checksums(run) == before
    res = mmcot(*train, "--epochs", "2", "--resume", "--allow-changed-data")
    assert res.exit_code == 0, res.stderr
    changed = json.loads((run / "run_config.json").read_text())["changed_inputs"][-1]["changed"]
    assert list(changed) == ["--features images"]
