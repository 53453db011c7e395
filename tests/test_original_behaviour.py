"""Where the original's choices change results, mmcot matches them: decoding of generated rationales, and the
released checkpoint + features reproduce through the ordinary CLI (import-features → import-run → generate →
score)."""

import json

import pytest
import torch
from conftest import SHARED
from t5_layouts import make_tokenizer_files

FIXTURE = SHARED / "reference-checkpoint"


def test_generated_texts_are_decoded_as_the_original(tmp_path):
    """skip_special_tokens=True, clean_up_tokenization_spaces=True: " ." → ".", no <pad>/</s>, stripped."""
    from mmcot_cli.model.generation import decode_generated
    from mmcot_cli.model.t5_dirs import load_tokenizer

    make_tokenizer_files(tmp_path, "json")
    tokenizer = load_tokenizer(tmp_path)
    ids = [0] + tokenizer("Solution: The ball is red . The ball is blue ?").input_ids + [0, 0]
    raw = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert " ." in raw and " ?" in raw
    assert decode_generated(tokenizer, torch.tensor([ids])) == ["Solution: The ball is red. The ball is blue?"]


@pytest.fixture(scope="module")
def fixture_dir():
    if not (FIXTURE / "expected.jsonl").is_file():
        pytest.skip("../shared/reference-checkpoint not present")
    return FIXTURE


def test_release_through_the_cli_end_to_end(cli, tmp_path, sample_dir, fixture_dir):
    """The README's "Use the released checkpoints and features" commands, on the sample and the fixture."""
    data, feats = tmp_path / "data", tmp_path / "features"
    assert cli("-q", "prepare", sample_dir, "--out", data).exit_code == 0
    res = cli("-q", "import-features", fixture_dir / "features.npy", "--name-map", fixture_dir / "name_map.json",
              "--data", data, "--split", "train,val,test", "--backbone", "detr", "--out", feats, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["splits"]["test"] == {"records": 50, "with_features": 24, "zero_features": 26}
    for stage in ("rationale", "answer"):
        res = cli("-q", "import-run", fixture_dir / "checkpoint", "--stage", stage, "--backbone", "detr",
                  "--out", tmp_path / f"run_{stage[0]}", "--json")
        assert res.exit_code == 0, res.output
    res = cli("-q", "generate", "--run", tmp_path / "run_r", "--data", data, "--split", "test", "--features", feats,
              "--max-new-tokens", "24", "--json")
    assert res.exit_code == 0, res.output
    preds = [json.loads(line) for line in (tmp_path / "run_r" / "preds-test.jsonl").read_text().splitlines()]
    assert len(preds) == 50
    # mmcot's own QCM-E prompts are the original's sources, and its greedy output follows the original's: the
    # fixture forced 24 tokens (min_new_tokens), so where mmcot stopped at </s> its text is a prefix of them
    from mmcot_cli.data.prompts import build_prompt
    from mmcot_cli.data.records import load_records
    from mmcot_cli.model.generation import decode_generated
    from mmcot_cli.model.text.runs import load_run_model

    tokenizer = load_run_model(tmp_path / "run_r")[1]
    expected = {r["qid"]: r for r in map(json.loads, (fixture_dir / "expected.jsonl").read_text().splitlines())}
    for record in load_records(data, "test"):
        assert build_prompt(record, "QCM-E")[0] == expected[record["qid"]]["source"], record["qid"]
    for pred in preds:
        full = decode_generated(tokenizer, torch.tensor([expected[pred["qid"]]["generated_ids"]]))[0]
        assert pred["prediction"] and full.startswith(pred["prediction"]), pred["qid"]
    res = cli("-q", "generate", "--run", tmp_path / "run_a", "--data", data, "--split", "test", "--features", feats,
              "--rationales", tmp_path / "run_r", "--max-new-tokens", "8", "--json")
    assert res.exit_code == 0, res.output
    res = cli("-q", "score", tmp_path / "run_a" / "preds-test.jsonl", "--data", data, "--split", "test",
              "--fallback", "reference", "--seed", "1", "--json")
    assert res.exit_code == 0, res.output
    scored = json.loads(res.stdout)
    assert scored["num_gold"] == 50 and scored["fallback"] == "reference"


def test_no_group_by_length_draws_plain_random_batches():
    """--no-group-by-length: batches are consecutive slices of a seeded permutation (the original's random
    sampler), not length-sorted groups."""
    from mmcot_cli.model.batching import LengthGroupedBatchSampler

    lengths = [(i * 37) % 101 for i in range(400)]
    plain = LengthGroupedBatchSampler(lengths, 8, seed=3, group_size=1).epoch_batches(0)
    grouped = LengthGroupedBatchSampler(lengths, 8, seed=3).epoch_batches(0)
    assert sorted(i for b in plain for i in b) == list(range(400))

    def spread(batches):  # mean length range inside a batch
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    assert spread(grouped) < 5 < 40 < spread(plain)


def test_no_group_by_length_flag_is_recorded(cli, tmp_path):
    from t5_layouts import make_t5_dir
    from test_t5_layouts import RECORD

    data = tmp_path / "data"
    data.mkdir()
    rows = [{**RECORD, "qid": str(i), "split": "train", "question": "Which colour is the ball?",
             "choices": ["red", "blue"], "answer": i % 2, "solution": "The ball is red."} for i in range(6)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = make_t5_dir(tmp_path / "t5", tokenizer="json", weights="safetensors", tied=False)
    res = cli("-q", "train", "--stage", "rationale", "--data", data, "--text-model", text, "--out", tmp_path / "run",
              "--epochs", "1", "--batch-size", "3", "--val-split", "none", "--max-output-len", "8",
              "--no-group-by-length")
    assert res.exit_code == 0, res.output
    run_config = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert run_config["train_config"]["group_by_length"] is False


@pytest.mark.parametrize("script", ["scienceqa_base.sh", "scienceqa_large.sh"])
def test_example_scripts_stop_without_instruct_captions(tmp_path, script):
    """No silent fallback to ScienceQA's captions.json: the published FLAN-Alpaca rows used InstructBLIP ones."""
    import subprocess

    from conftest import REPO_ROOT

    (tmp_path / "captions.json").write_text('{"captions": {}}')
    env = {"PATH": "/usr/bin:/bin", "SQA": str(tmp_path), "WORK": str(tmp_path / "work")}
    out = subprocess.run(["bash", str(REPO_ROOT / "examples" / script)], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{tmp_path}/instruct_captions.json not found" in out.stderr and "InstructBLIP" in out.stderr
    assert not (tmp_path / "work").exists()
