"""`mmcot ask --questions FILE.jsonl`: many questions, the runs loaded once, every line checked before any model
is loaded (a bad line is FILE:LINE and nothing is printed); and `ask --image` reading the run's stored row."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_record

from mmcot_cli.io import write_jsonl
from mmcot_cli.model.text.runs import build_model, save_run_model
from mmcot_cli.runs.meta import RunMeta

OPTIONS = {"d_model": 16, "layers": 1, "heads": 2, "d_ff": 32}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two images (one in the runs' `patches` feature store, one not), a rationale run and an answer run."""
    from PIL import Image

    from mmcot_cli.features.extract import ExtractConfig, extract

    root = tmp_path_factory.mktemp("questions")
    images = {}
    for name, colour in (("stored", (200, 30, 30)), ("new", (30, 30, 200))):
        images[name] = root / "pics" / f"{name}.png"
        images[name].parent.mkdir(exist_ok=True)
        Image.new("RGB", (40, 40), colour).save(images[name])
    record = build_record(qid="1", split="train", question="Which color?", choices=["red", "blue"], answer=0,
                          image="stored.png", image_paths=[str(images["stored"])])
    write_jsonl(root / "data" / "train.jsonl", [record])
    extract(ExtractConfig(backbone="patches", out=str(root / "features"), data_dir=str(root / "data"),
                          splits=("train",), workers=0, dtype="float32"))
    runs = {}
    for stage, fmt in (("rationale", "QCM-E"), ("answer", "QCMG-A")):
        torch.manual_seed(0)
        model, tok = build_model("t5-scratch", [49, 192], train_texts=["Question: Which color? Options: (A) red "
                                                                        "(B) blue The answer is (A)."] * 4,
                                 text_options=OPTIONS)
        meta = RunMeta(stage=stage, prompt_format=fmt, text_backbone="t5-scratch", vision_backbone="patches",
                       feature_shape=[49, 192], max_input_len=64, max_output_len=6,
                       features_dir=str(root / "features"))
        runs[stage] = root / stage
        save_run_model(model, tok, runs[stage] / "model", meta.model_meta())
        meta.save(runs[stage])
    return {"root": root, "images": images, "runs": runs}


def _ask(cli, world, *args):
    return cli("ask", "--rationale-run", world["runs"]["rationale"], "--answer-run", world["runs"]["answer"],
               "--device", "cpu", *args)


def _write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.fixture
def spies(monkeypatch):
    """Count model loads (inference.ask.load_run) and vision encoder builds."""
    import mmcot_cli.inference.ask as ask_module
    import mmcot_cli.inference.ask_images as images_module

    calls = {"load_run": 0, "build_vision_encoder": 0}
    for module, name in ((ask_module, "load_run"), (images_module, "build_vision_encoder")):
        real = getattr(module, name)

        def counting(*a, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(module, name, counting)
    return calls


def test_many_questions_one_load_one_json_line_each(cli, world, tmp_path, spies):
    folder = world["images"]["stored"].parent
    questions = _write(folder / "questions.jsonl", [
        {"qid": "q-red", "question": "Which color is it?", "choices": ["red", "blue"], "image": "stored.png"},
        {"question": "Which color now?", "choices": "red|blue|green", "context": "Look.", "image": "new.png"},
        {"qid": 7, "question": "Any image?", "choices": ["yes", "no"]},
        {"question": "Again the new one?", "choices": ["red", "blue"], "image": str(world["images"]["new"])},
    ])
    res = _ask(cli, world, "--questions", questions, "--json")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["qid"] for r in rows] == ["q-red", "2", "7", "4"]  # file order; default qid: the line number
    assert spies["load_run"] == 2  # one load per run for four questions
    assert spies["build_vision_encoder"] == 1  # the stored image needs none; the new one is encoded once
    assert rows[0]["rationale_run"]["image_features"] == rows[0]["answer_run"]["image_features"] == "store"
    assert rows[1]["answer_run"]["image_features"] == "encoded" and rows[1]["image"] == str(world["images"]["new"])
    assert rows[1]["choices"] == ["red", "blue", "green"] and rows[1]["context"] == "Look."
    assert rows[2]["image"] is None and rows[2]["answer_run"]["image_features"] is None
    for row in rows:
        assert row["answer_letter"] in "ABC" and row["answer_text"] in row["choices"]  # constrained to its options
    # the same question through the flags gives the same answer
    single = _ask(cli, world, "--question", "Which color now?", "--choices", "red|blue|green", "--context", "Look.",
                  "--image", world["images"]["new"], "--json")
    assert single.exit_code == 0, single.output
    one = json.loads(single.stdout)
    assert (one["rationale"], one["answer"]) == (rows[1]["rationale"], rows[1]["answer"])
    table = _ask(cli, world, "--questions", questions)
    assert table.exit_code == 0, table.output
    for row in rows:  # one table row per question: qid, question, the chosen option
        assert row["qid"] in table.stdout and row["question"] in table.stdout
        assert f"({row['answer_letter']}) {row['answer_text']}" in table.stdout


@pytest.mark.parametrize("line,message", [
    ('{"question": "Q?", "choices": ["a", "b"]', "invalid JSON"),
    ('["Q?", "a|b"]', "expected a JSON object, got list"),
    ({"question": "Q?", "choice": ["a", "b"]}, "unknown field 'choice'"),
    ({"question": "Q?"}, "`choices` must be a list of strings"),
    ({"question": "Q?", "choices": ["only"]}, "`choices` needs 2 to 5"),
    ({"question": 3, "choices": ["a", "b"]}, "`question` must be a string"),
    ({"question": "Q?", "choices": ["a", "b"], "image": "missing.png"}, "file not found"),
    ({"qid": "1", "question": "Q?", "choices": ["a", "b"]}, "qid '1' again"),
])
def test_a_bad_line_is_file_line_and_nothing_is_answered(cli, world, tmp_path, spies, line, message):
    questions = _write(tmp_path / "q.jsonl", [{"qid": "1", "question": "Q?", "choices": ["a", "b"]}, line,
                                              {"question": "Fine?", "choices": ["a", "b"]}])
    res = _ask(cli, world, "--questions", questions, "--json")
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.startswith(f"error: {questions}:2:") and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert spies["load_run"] == 0  # checked before any model is loaded


def test_questions_and_single_question_flags_exclude_each_other(cli, world, tmp_path):
    questions = _write(tmp_path / "q.jsonl", [{"question": "Q?", "choices": ["a", "b"]}])
    res = _ask(cli, world, "--questions", questions, "--question", "Q?")
    assert res.exit_code == 2 and "drop --question" in res.stderr
    res = _ask(cli, world, "--choices", "a|b")
    assert res.exit_code == 2 and "missing option --question" in res.stderr
    empty = _write(tmp_path / "empty.jsonl", [])
    res = _ask(cli, world, "--questions", empty)
    assert res.exit_code == 1 and "no questions" in res.stderr


def test_a_run_trained_on_random_init_features_is_asked_with_them(world):
    """Recorded weights "random-init" (extract --random-init): ask builds the same seeded random encoder instead
    of trying to download a model called "random-init"."""
    from mmcot_cli.inference.ask_images import run_encoding

    info = RunMeta(stage="rationale", prompt_format="QCM-E", text_backbone="t5-scratch", vision_backbone="vit",
                   feature_shape=[145, 1024], vision_weights="random-init", vision_alpha="original")
    enc = run_encoding(info, random_init=False, weights=None, alpha=None)
    assert enc.random_init and enc.weights is None and enc.alpha == "original"
    enc = run_encoding(info, random_init=False, weights="/some/dir", alpha="white")
    assert not enc.random_init and enc.weights == "/some/dir" and enc.alpha == "white"


def test_a_small_model_decodes_on_one_thread_and_the_setting_is_restored(world, monkeypatch):
    import mmcot_cli.inference.ask as ask_module
    from mmcot_cli.inference.ask import AskConfig, ask

    seen = []
    real = ask_module.generate_texts

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    monkeypatch.setattr(ask_module, "generate_texts", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ask(AskConfig(rationale_run=str(world["runs"]["rationale"]), answer_run=str(world["runs"]["answer"]),
                      question="Q?", choices=["a", "b"], device="cpu"))
        assert seen == [1, 1] and torch.get_num_threads() == 2
        monkeypatch.setattr(ask_module, "SMALL_MODEL_PARAMS", 10)  # a model above the limit keeps the pool
        seen.clear()
        ask(AskConfig(rationale_run=str(world["runs"]["rationale"]), answer_run=str(world["runs"]["answer"]),
                      question="Q?", choices=["a", "b"], device="cpu"))
        assert seen == [2, 2]
    finally:
        torch.set_num_threads(before)


def test_a_digest_whose_qid_has_no_row_is_encoded_not_zeros(world):
    """A stored digest naming a qid without a row (a skipped item) must not serve the zeros `get` returns."""
    from mmcot_cli.data.images import image_digest
    from mmcot_cli.features.store import open_store
    from mmcot_cli.inference.ask_images import image_features

    image = world["images"]["stored"]
    info = RunMeta.for_run(world["runs"]["rationale"], {})
    store = open_store(info.features_dir)
    cache = {"stores": {info.features_dir: (store, {image_digest(image.read_bytes()): "no-such-qid"})}}
    feats, source = image_features(info, (49, 192), str(image), random_init=False, device=torch.device("cpu"),
                                   cache=cache)
    assert source == "encoded" and feats.abs().sum() > 0
    torch.testing.assert_close(feats[0], store.get("1"))


def test_bench_ask_times_the_phases_this_code_has(world):
    """benchmarks/bench_ask.py wraps functions by name: each phase it reports must still exist here (else it
    would report 0 s for it). One child process; the timings themselves are the benchmark's, not asserted."""
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("bench_ask", REPO_ROOT / "benchmarks" / "bench_ask.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = {"rationale_run": str(world["runs"]["rationale"]), "answer_run": str(world["runs"]["answer"]),
           "question": "Which color?", "choices": ["red", "blue"], "image": str(world["images"]["new"]),
           "device": "cpu"}
    out = bench.run_child(REPO_ROOT, cfg)
    assert "error" not in out, out
    assert out["load_runs_s"] > 0 and out["generate_s"] > 0 and out["vision_build_s"] > 0
    assert out["ask_s"] >= out["load_runs_s"] + out["generate_s"] + out["vision_build_s"]
