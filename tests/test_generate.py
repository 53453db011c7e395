"""`mmcot generate` and `mmcot ask` on tiny random-init runs, real patch features and a hand-made DATA_DIR."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import build_record

from mmcot_cli.errors import DataError
from mmcot_cli.inference.generate import GenerateConfig, generate, prediction_row
from mmcot_cli.io import read_jsonl, write_jsonl
from mmcot_cli.model.generation import generate_texts
from mmcot_cli.model.text.runs import build_model, load_run_model, save_run_model
from mmcot_cli.runs.meta import RunMeta

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}
PATCH_SHAPE = [49, 192]  # the weight-free `patches` vision backbone
MAX_OUT = 6


def _record(qid: str, split: str, image_path: str | None, colour: str, hint: str = "") -> dict:
    choices = ["red", "blue", "green"]
    return build_record(qid=qid, split=split, question="What color is the big square?", hint=hint, choices=choices,
                        answer=choices.index(colour), lecture="Colors are seen with light.",
                        solution=f"The square is {colour}.", grade="grade2", topic="colors",
                        image="image.png" if image_path else None, image_paths=[image_path] if image_path else [])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """DATA_DIR (train/val/test), a patches FEATURES_DIR, a rationale run, an answer run and a text-only run."""
    from PIL import Image

    from mmcot_cli.data.prompts import build_prompt
    from mmcot_cli.features.extract import ExtractConfig, extract

    root = tmp_path_factory.mktemp("gen")
    data = root / "data"
    rng = random.Random(0)
    qid = 0
    records = {}
    for split, n in (("train", 6), ("val", 4), ("test", 5)):
        rows = []
        for i in range(n):
            qid += 1
            colour = rng.choice(list(COLOURS))
            path = None
            if i % 3 != 2:  # some problems have no image (zeros features)
                img_dir = root / "images" / str(qid)
                img_dir.mkdir(parents=True)
                image = Image.new("RGB", (64, 64), (255, 255, 255))
                image.paste(COLOURS[colour], (8, 8, 56, 56))
                path = str(img_dir / "image.png")
                image.save(path)
            rows.append(_record(str(qid), split, path, colour, hint="" if path else f"The square is {colour}."))
        write_jsonl(data / f"{split}.jsonl", rows)
        records[split] = rows
    features = root / "features"
    extract(ExtractConfig(backbone="patches", out=str(features), data_dir=str(data),
                          splits=("train", "val", "test"), workers=0, dtype="float32"))

    texts = [s for r in records["train"] for fmt in ("QCM-E", "QCMG-A") for s in build_prompt(r, fmt)]
    texts += ["The answer is (A). (B) (C)"]
    options = {"d_model": 32, "layers": 1, "heads": 2, "d_ff": 64}

    def make_run(name, stage, fmt, image_shape, rationales=None):
        torch.manual_seed(len(name))
        model, tok = build_model("t5-scratch", image_shape, train_texts=texts, text_options=options)
        meta = RunMeta(stage=stage, prompt_format=fmt, text_backbone="t5-scratch",
                       vision_backbone="patches" if image_shape else None, feature_shape=image_shape,
                       max_input_len=96, max_output_len=MAX_OUT, features_dir=str(features) if image_shape else None,
                       rationales={"source": str(rationales), "train_on": "gold"} if rationales else None, seed=0)
        run = root / name
        save_run_model(model, tok, run / "model", meta.model_meta())
        meta.save(run)
        return run

    run_r = make_run("run_r", "rationale", "QCM-E", PATCH_SHAPE)
    run_a = make_run("run_a", "answer", "QCMG-A", PATCH_SHAPE, rationales=run_r)
    run_t = make_run("run_t", "answer", "QCM-A", None)
    return {"root": root, "data": data, "features": features, "run_r": run_r, "run_a": run_a, "run_t": run_t,
            "records": records}


def test_rationale_run_writes_one_row_per_qid_for_each_split(world, cli):
    res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "train,val,test",
              "--batch-size", "4", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # --json: stdout is exactly one JSON object
    assert summary["stage"] == "rationale" and summary["features"] == str(world["features"])
    for split in ("train", "val", "test"):
        path = world["run_r"] / f"preds-{split}.jsonl"
        assert summary["splits"][split]["out"] == str(path)
        rows = read_jsonl(path)
        assert [r["qid"] for r in rows] == [r["qid"] for r in world["records"][split]]  # split order
        for row in rows:
            assert set(row) == {"qid", "prediction", "stage", "answer_letter", "answer_index", "protocol",
                                "precision"}
            assert row["stage"] == "rationale" and row["answer_letter"] is None and row["answer_index"] is None
            assert isinstance(row["prediction"], str)


def test_batching_and_length_sorting_do_not_change_predictions(world, tmp_path, cli):
    for bs in ("1", "5"):
        res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "test",
                  "--batch-size", bs, "--out", tmp_path / f"bs{bs}.jsonl")
        assert res.exit_code == 0, res.output
    assert read_jsonl(tmp_path / "bs1.jsonl") == read_jsonl(tmp_path / "bs5.jsonl")


def test_generate_texts_fuses_once_per_batch(world):
    model, tok, _ = load_run_model(world["run_r"])
    calls = []
    model.fusion.register_forward_hook(lambda *a: calls.append(1))
    feats = torch.randn(5, *PATCH_SHAPE)
    texts = generate_texts(model, tok, ["a b c", "Question: What color", "x", "y z", "The answer"],
                           feature_batch=lambda idx: feats[idx], batch_size=2, max_new_tokens=10,
                           min_new_tokens=10)
    assert len(texts) == 5 and len(calls) == 3  # 3 batches, 10 decoding steps each, fusion once per batch


def test_answer_run_reads_rationales_by_qid_not_position(world, tmp_path, cli):
    assert cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "test").exit_code == 0
    rows = read_jsonl(world["run_r"] / "preds-test.jsonl")
    # Distinct rationales per qid make the hand-off observable; a reversed file must give the same answers.
    for i, row in enumerate(rows):
        row["prediction"] = f"Solution: The square is {['red', 'blue', 'green'][i % 3]} number {i}."
    write_jsonl(tmp_path / "r.jsonl", rows)
    write_jsonl(tmp_path / "r_reversed.jsonl", list(reversed(rows)))
    outs = {}
    for name in ("r", "r_reversed"):
        res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "test",
                  "--rationales", tmp_path / f"{name}.jsonl", "--out", tmp_path / f"a_{name}.jsonl", "--json")
        assert res.exit_code == 0, res.output
        outs[name] = read_jsonl(tmp_path / f"a_{name}.jsonl")
    assert outs["r"] == outs["r_reversed"]
    assert all(r["stage"] == "answer" for r in outs["r"])
    # Each answer row keeps the rationale it was inferred from (score's rationale metrics and report read it).
    assert {r["qid"]: r["rationale"] for r in outs["r"]} == {r["qid"]: r["prediction"] for r in rows}
    score = json.loads(cli("score", tmp_path / "a_r.jsonl", "--data", world["data"], "--json").stdout)
    assert score["rationale"]["num_scored"] == len(rows)
    # An answer run's predictions given as rationales (their text states the answer) are refused, file:line.
    res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "test",
              "--rationales", tmp_path / "a_r.jsonl", "--out", tmp_path / "never.jsonl")
    assert res.exit_code == 1 and f"{tmp_path / 'a_r.jsonl'}:1: qid" in res.stderr
    assert "an answer-stage prediction, not a stage-1 rationale" in res.stderr and not (tmp_path / "never.jsonl").exists()
    # The rationale really is in the prompt: a different rationale for one qid changes the model input.
    from mmcot_cli.data.prompts import build_prompt

    rec = world["records"]["test"][0]
    assert rows[0]["prediction"] in build_prompt(rec, "QCMG-A", rationale=rows[0]["prediction"])[0]


def test_answer_run_reads_the_originals_stage_1_file_once_imported(world, tmp_path, cli):
    """The original's positional predictions_ans_test.json, imported with --format mm-cot, drives stage 2 exactly
    as the same rationales in a qid-keyed file do, and the generate summary names the original file."""
    test = world["records"]["test"]
    texts = [f"Solution: The square is {['red', 'blue', 'green'][i % 3]} number {i}." for i in range(len(test))]
    original = tmp_path / "predictions_ans_test.json"
    original.write_text(json.dumps({"num_fail": 0, "scores": {}, "preds": texts,
                                    "labels": [f"Solution: {r['solution']}" for r in test]}, indent=4))
    res = cli("rationales", "import", original, "--format", "mm-cot", "--data", world["data"], "--split", "test",
              "--out", tmp_path / "imported.jsonl")
    assert res.exit_code == 0, res.output
    write_jsonl(tmp_path / "keyed.jsonl", [{"qid": r["qid"], "prediction": t, "stage": "rationale"}
                                           for r, t in zip(test, texts)])
    outs = {}
    for name in ("imported", "keyed"):
        res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "test",
                  "--rationales", tmp_path / f"{name}.jsonl", "--out", tmp_path / f"a_{name}.jsonl", "--json")
        assert res.exit_code == 0, res.output
        outs[name] = (read_jsonl(tmp_path / f"a_{name}.jsonl"), json.loads(res.stdout)["splits"]["test"])
    assert outs["imported"][0] == outs["keyed"][0]
    provenance = outs["imported"][1]["rationales"]
    assert provenance["imported_from"]["format"] == "mm-cot" and provenance["imported_from"]["split"] == "test"
    assert provenance["imported_from"]["path"] == str(original.resolve())
    assert "imported_from" not in outs["keyed"][1]["rationales"]


def test_answer_run_defaults_to_recorded_rationales_and_missing_qid_is_named(world, tmp_path, cli):
    # Default --rationales: the stage-1 run recorded in run_config.json (its preds-val.jsonl).
    assert cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "val").exit_code == 0
    res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "val",
              "--out", tmp_path / "val.jsonl", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rationales"] == str(world["run_r"])
    # A rationale file lacking one qid: a clear error naming it, and no output file.
    rows = read_jsonl(world["run_r"] / "preds-val.jsonl")
    write_jsonl(tmp_path / "partial.jsonl", rows[1:])
    out = tmp_path / "never.jsonl"
    res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "val",
              "--rationales", tmp_path / "partial.jsonl", "--out", out)
    assert res.exit_code == 1
    assert f"no rationale for qid {rows[0]['qid']}" in res.stderr
    assert not out.exists()


def test_feature_shape_mismatch_and_option_errors(world, tmp_path, cli):
    odd = tmp_path / "odd_run"
    model, tok = build_model("t5-scratch", (4, 8), train_texts=["a b c"], text_options={"d_model": 16, "heads": 2})
    save_run_model(model, tok, odd / "model", {"stage": "rationale", "prompt_format": "QCM-E",
                                               "feature_shape": [4, 8], "vision_backbone": "patches"})
    res = cli("generate", "--run", odd, "--data", world["data"], "--features", world["features"])
    assert res.exit_code == 1 and "[49, 192]" in res.stderr and "[4, 8]" in res.stderr
    res = cli("generate", "--run", world["run_t"], "--data", world["data"], "--features", world["features"])
    assert res.exit_code == 2 and "text-only" in res.stderr
    res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "val,test",
              "--out", tmp_path / "one.jsonl")
    assert res.exit_code == 2 and "{split}" in res.stderr
    res = cli("generate", "--run", tmp_path / "nothing", "--data", world["data"])
    assert res.exit_code == 1 and "not a run directory" in res.stderr


def test_text_only_answer_run_extracts_letters(world, tmp_path):
    summary = generate(GenerateConfig(run=str(world["run_t"]), data_dir=str(world["data"]), splits=("test",),
                                      out=str(tmp_path / "t.jsonl"), device="cpu"))
    assert summary["splits"]["test"]["count"] == 5 and "answer_found" in summary["splits"]["test"]
    for row in read_jsonl(tmp_path / "t.jsonl"):
        assert row["stage"] == "answer"
        assert (row["answer_letter"] is None) == (row["answer_index"] is None) or row["answer_letter"] > "C"


def test_protocol_original_decodes_freely_and_is_recorded(world, tmp_path, cli):
    """--protocol original: no answer constraint (the original decodes freely), `protocol` in every row."""
    out = tmp_path / "o.jsonl"
    res = cli("generate", "--run", world["run_t"], "--data", world["data"], "--out", out, "--device", "cpu",
              "--protocol", "original", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["protocol"] == "original" and summary["constrained_answers"] is False
    rows = read_jsonl(out)
    assert rows and all(r["protocol"] == "original" and r["constrained"] is False for r in rows)
    default = tmp_path / "d.jsonl"
    assert cli("generate", "--run", world["run_t"], "--data", world["data"], "--out", default, "--device",
               "cpu").exit_code == 0
    assert all(r["protocol"] == "mmcot" and r["constrained"] is True for r in read_jsonl(default))


def test_prediction_row_extraction():
    assert prediction_row("1", "The answer is (B).", "answer", 3, True) == {
        "qid": "1", "prediction": "The answer is (B).", "stage": "answer", "answer_letter": "B", "answer_index": 1,
        "constrained": False}
    beyond = prediction_row("2", "The answer is (E).", "answer", 3, True)
    assert beyond["answer_letter"] == "E" and beyond["answer_index"] is None  # kept, scored wrong
    assert prediction_row("3", "The answer is (A). The answer is (B).", "answer", 3, True)["answer_letter"] is None
    assert prediction_row("4", "The answer is (A).", "rationale", 3, False)["answer_letter"] is None


def test_ask_runs_both_stages_with_an_image(world, cli):
    image = world["records"]["test"][0]["image_paths"][0]
    res = cli("ask", "--rationale-run", world["run_r"], "--answer-run", world["run_a"], "--question",
              "What color is the big square?", "--choices", "red|blue|green", "--image", image, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["choices"] == ["red", "blue", "green"] and isinstance(out["rationale"], str)
    assert out["answer_run"]["uses_rationale"] and out["rationale_run"]["vision_backbone"] == "patches"
    assert out["warnings"] == []
    res = cli("ask", "--rationale-run", world["run_r"], "--answer-run", world["run_a"], "--question",
              "Which is a color?", "--choices", "red|table", "--context", "Red is a color.")
    assert res.exit_code == 0 and res.stdout.startswith("Rationale: ")


def test_ask_features_match_extracted_store(world, tmp_path):
    """`ask` encodes an image exactly as `mmcot extract` did for training (same backbone, same numbers); an image
    the run's store was extracted from is read from the store, not encoded again."""
    import dataclasses
    import shutil

    from mmcot_cli.features.store import open_store
    from mmcot_cli.inference.ask import encode_ask_image
    from mmcot_cli.inference.ask_images import image_features

    rec = world["records"]["test"][0]
    _, _, model_meta = load_run_model(world["run_r"])
    info = RunMeta.for_run(world["run_r"], model_meta)
    stored = open_store(world["features"]).get(rec["qid"])
    copy = tmp_path / "same-bytes.png"  # another path, the same file content: found by digest
    shutil.copyfile(rec["image_paths"][0], copy)
    cache: dict = {}
    feats, source = image_features(info, (49, 192), str(copy), random_init=False, device=torch.device("cpu"),
                                   cache=cache)
    assert source == "store" and "encoders" not in cache  # no backbone built
    torch.testing.assert_close(feats[0], stored)
    no_store = dataclasses.replace(info, features_dir=None)
    feats, source = image_features(no_store, (49, 192), rec["image_paths"][0], random_init=False,
                                   device=torch.device("cpu"), cache={})
    assert source == "encoded"
    torch.testing.assert_close(feats[0], stored)
    # encoded another way than the store was made (another transparency policy): never the stored row
    _, source = image_features(info, (49, 192), str(copy), random_init=False, device=torch.device("cpu"),
                               cache={}, alpha="original" if open_store(world["features"]).alpha == "white"
                               else "white")
    assert source == "encoded"
    feats = encode_ask_image(info, (49, 192), rec["image_paths"][0], random_init=False,
                             device=torch.device("cpu"), cache={})
    torch.testing.assert_close(feats[0], stored)
    zeros = encode_ask_image(info, (49, 192), None, random_init=False, device=torch.device("cpu"), cache={})
    assert zeros.shape == (1, 49, 192) and not zeros.any()


def test_ask_errors(world, cli):
    res = cli("ask", "--rationale-run", world["run_a"], "--answer-run", world["run_a"], "--question", "Q?",
              "--choices", "a|b")
    assert res.exit_code == 2 and "rationale-stage run" in res.stderr
    res = cli("ask", "--rationale-run", world["run_r"], "--answer-run", world["run_a"], "--question", "Q?",
              "--choices", "only-one")
    assert res.exit_code == 2 and "2 to 5" in res.stderr
    with pytest.raises(DataError, match="cannot read image .*: file not found"):
        from mmcot_cli.inference.ask import AskConfig, ask

        ask(AskConfig(rationale_run=str(world["run_r"]), answer_run=str(world["run_a"]), question="Q?",
                      choices=["a", "b"], image=str(world["root"] / "missing.png")))


def test_run_may_be_given_as_its_model_dir(world, tmp_path, cli):
    assert cli("generate", "--run", world["run_r"] / "model", "--data", world["data"]).exit_code == 0
    assert (world["run_r"] / "preds-test.jsonl").is_file()  # default output goes to RUN_DIR, not model/
    res = cli("generate", "--run", world["run_a"] / "model", "--data", world["data"], "--split", "test",
              "--rationales", world["run_r"], "--out", tmp_path / "a.jsonl", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["prompt_format"] == "QCMG-A"


def test_non_utf8_rationale_file_is_one_line_error(world, tmp_path, cli):
    bad = tmp_path / "binary.jsonl"
    good = [{"qid": r["qid"], "prediction": "Solution: x."} for r in world["records"]["val"]]
    bad.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in good) + b"\xff\xfe garbage\n")
    out = tmp_path / "never.jsonl"
    res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "val",
              "--rationales", bad, "--out", out)
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and f"{bad}:{len(good) + 1}: not UTF-8" in res.stderr
    assert not out.exists()


def test_cuda_device_without_a_gpu_is_a_usage_error(world, tmp_path, cli):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--device", "cuda",
              "--out", tmp_path / "never.jsonl")
    assert res.exit_code == 2 and "no CUDA GPU" in res.stderr and res.stderr.strip().count("\n") == 0
    assert not (tmp_path / "never.jsonl").exists()


def test_bad_later_split_writes_no_output_for_earlier_splits(world, tmp_path, cli):
    stage1 = tmp_path / "only_val"
    stage1.mkdir()
    (stage1 / "preds-val.jsonl").write_text("".join(
        json.dumps({"qid": r["qid"], "prediction": "Solution: x."}) + "\n" for r in world["records"]["val"]))
    res = cli("generate", "--run", world["run_a"], "--data", world["data"], "--split", "val,test",
              "--rationales", stage1, "--out", tmp_path / "out-{split}.jsonl")
    assert res.exit_code == 1 and "preds-test.jsonl" in res.stderr
    assert not (tmp_path / "out-val.jsonl").exists() and not (tmp_path / "out-test.jsonl").exists()


def test_features_missing_for_image_problems_are_an_error(world, tmp_path, cli):
    from mmcot_cli.features.store import import_features

    test = world["records"]["test"]
    feats = tmp_path / "test_only"
    import_features(feats, backbone="patches", split="test", qids=[r["qid"] for r in test],
                    features=torch.zeros(len(test), *PATCH_SHAPE).numpy(), dtype="float32")
    assert cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "test",
               "--features", feats, "--out", tmp_path / "ok.jsonl").exit_code == 0
    out = tmp_path / "never.jsonl"
    res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "train",
              "--features", feats, "--out", out)
    first = next(r["qid"] for r in world["records"]["train"] if r["image_paths"])
    assert res.exit_code == 1 and f"no features for qid {first}" in res.stderr and "'train'" in res.stderr
    assert not out.exists()


def test_ask_refuses_a_rationale_run_as_answer_run(world, cli):
    res = cli("ask", "--rationale-run", world["run_r"], "--answer-run", world["run_r"], "--question", "Q?",
              "--choices", "a|b")
    assert res.exit_code == 2 and "--answer-run must name an answer-stage run" in res.stderr


def test_rationales_for_a_run_that_takes_none_is_a_usage_error(world, tmp_path, cli):
    res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--split", "test",
              "--rationales", world["run_r"], "--out", tmp_path / "p.jsonl")
    assert res.exit_code == 2 and "takes no rationale" in res.stderr
    assert not (tmp_path / "p.jsonl").exists()


def test_precision_is_one_autocast_for_encoder_fusion_and_decoder(world, tmp_path, monkeypatch, cli):
    """generate --precision bf16 on CPU: the fusion layer's and the decoder head's matmuls both run in bf16
    (validation and generation no longer leave encoder + fusion in fp32); fp32 stays fp32; rows record it."""
    from mmcot_cli.model import fusion

    seen: dict[str, set] = {"fusion": set(), "lm_head": set()}
    original = fusion.ImageFusion.forward

    def spy(self, text_states, image_features):
        seen["fusion"].add(self.gate(torch.cat([text_states, text_states], dim=-1)).dtype)
        return original(self, text_states, image_features)

    monkeypatch.setattr(fusion.ImageFusion, "forward", spy)
    head = torch.nn.Linear.forward

    def head_spy(self, x):
        out = head(self, x)
        if self.out_features > 100:  # the vocabulary projection
            seen["lm_head"].add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", head_spy)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        for key in seen:
            seen[key].clear()
        out = tmp_path / f"{precision}.jsonl"
        res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--out", out, "--device", "cpu",
                  "--precision", precision, "--json")
        assert res.exit_code == 0, res.output
        assert seen == {"fusion": {dtype}, "lm_head": {dtype}}, (precision, seen)
        assert json.loads(res.stdout)["precision"] == precision
        assert {r["precision"] for r in read_jsonl(out)} == {precision}
    res = cli("generate", "--run", world["run_r"], "--data", world["data"], "--out", tmp_path / "x.jsonl",
              "--device", "cpu", "--precision", "fp16")
    assert res.exit_code == 2 and "fp16 needs a CUDA GPU" in res.stderr and not (tmp_path / "x.jsonl").exists()


def test_precision_run_default_follows_the_recorded_one(world, tmp_path, cli):
    """--precision run (the default): what the run trained in; fp16 on a CPU falls back to fp32 with a warning."""
    meta = RunMeta.load(world["run_t"])
    saved = (world["run_t"] / "run_config.json").read_text()
    try:
        for recorded, used in (("bf16", "bf16"), ("fp16", "fp32")):
            meta.precision = recorded
            meta.save(world["run_t"])
            res = cli("generate", "--run", world["run_t"], "--data", world["data"], "--out",
                      tmp_path / f"{recorded}.jsonl", "--device", "cpu", "--json")
            assert res.exit_code == 0, res.output
            summary = json.loads(res.stdout)
            assert summary["precision"] == used
            assert (recorded == "fp16") == any("trained in fp16" in w for w in summary["warnings"])
    finally:
        (world["run_t"] / "run_config.json").write_text(saved)
