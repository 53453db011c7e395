"""End to end through the CLI on data that is not ScienceQA: prepare → extract (weight-free patches) → train both
stages (tiny t5-scratch, 1 epoch) → generate → score, for A-OKVQA and generic JSONL; and the teacher path
(sample K rationales from a trained run, filter them, retrain on the kept ones)."""

import hashlib
import json

from own_data_fixtures import sqa_source, write_aokvqa, write_jsonl  # noqa: F401 (fixture)

from mmcot_cli.data.records import load_records
from mmcot_cli.data.teacher import strip_prefix

TINY = ["--text-model", "t5-scratch", "--epochs", "1", "--batch-size", "4", "--lr", "3e-3", "--eval-every", "0",
        "--text-option", "d_model=32", "--text-option", "layers=1", "--text-option", "heads=2",
        "--text-option", "vocab_size=400"]


def _ok(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else None


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pipeline(cli, tmp_path, source_args):
    """prepare … → the two runs; returns (DATA_DIR, rationale run, answer run)."""
    data, feats, run_r, run_a = (tmp_path / n for n in ("data", "feats", "run_r", "run_a"))
    _ok(cli("--quiet", "prepare", *source_args, "--out", data, "--json"))
    extracted = _ok(cli("--quiet", "extract", "--data", data, "--backbone", "patches", "--split", "train,val,test",
                        "--out", feats, "--json"))
    assert extracted is not None
    _ok(cli("--quiet", "train", "--stage", "rationale", "--data", data, "--features", feats, "--out", run_r,
            "--max-output-len", "16", *TINY, "--json"))
    _ok(cli("--quiet", "generate", "--run", run_r, "--data", data, "--split", "val,test", "--json"))
    _ok(cli("--quiet", "train", "--stage", "answer", "--data", data, "--features", feats, "--out", run_a,
            "--rationales", run_r, "--max-output-len", "8", *TINY, "--json"))
    _ok(cli("--quiet", "generate", "--run", run_a, "--data", data, "--split", "val,test", "--json"))
    for split in ("val", "test"):
        qids = [r["qid"] for r in load_records(data, split)]
        assert [p["qid"] for p in _rows(run_a / f"preds-{split}.jsonl")] == qids
    return data, run_r, run_a


def test_aokvqa_end_to_end(cli, tmp_path, sqa_source):
    write_aokvqa(sqa_source, tmp_path / "aok", tmp_path / "coco", per_split=6)
    data, run_r, run_a = _pipeline(cli, tmp_path, [tmp_path / "aok", "--images", tmp_path / "coco"])
    # The rationale stage trained on each of the three crowd rationales of the 6 train questions.
    run_cfg = json.loads((run_r / "run_config.json").read_text())
    assert run_cfg["train_examples"] == 18 and run_cfg["rationale_source"]["examples"] == 18
    out = _ok(cli("--quiet", "score", run_a / "preds-val.jsonl", "--data", data, "--split", "val", "--json"))
    assert out["num_gold"] == 6 and 0 <= out["accuracy"] <= 100
    assert set(out["aokvqa"]) >= {"mc_accuracy", "da_accuracy", "mc_accuracy_non_difficult", "da_accuracy_all"}
    rationale = _ok(cli("--quiet", "score", run_r / "preds-val.jsonl", "--data", data, "--split", "val", "--json"))
    assert rationale["rationale"]["num_scored"] == 6
    _ok(cli("--quiet", "score", run_a / "preds-test.jsonl", "--data", data, "--split", "test",
            "--export-aokvqa", tmp_path / "predictions_test-mc.json", "--json"))
    exported = json.loads((tmp_path / "predictions_test-mc.json").read_text())
    test = load_records(data, "test")
    assert list(exported) == [r["qid"] for r in test]
    assert all(set(exported[r["qid"]]) == {"multiple_choice", "direct_answer"} for r in test)
    assert all(exported[r["qid"]]["multiple_choice"] in r["choices"] + [""] for r in test)
    assert all(exported[r["qid"]]["direct_answer"] == exported[r["qid"]]["multiple_choice"] for r in test)


def test_jsonl_end_to_end(cli, tmp_path, sqa_source):
    write_jsonl(sqa_source, tmp_path / "src" / "problems.jsonl", per_split=6)
    data, run_r, run_a = _pipeline(cli, tmp_path, [tmp_path / "src" / "problems.jsonl", "--format", "jsonl"])
    out = _ok(cli("--quiet", "score", run_a / "preds-val.jsonl", "--data", data, "--split", "val", "--json"))
    assert out["data_format"] == "jsonl" and out["num_gold"] == 6
    assert sum(c["total"] for c in out["groups"]["subject"].values()) == 6
    result = cli("score", run_a / "preds-test.jsonl", "--data", data, "--split", "test")
    assert result.exit_code == 1 and "predict-only" in result.stderr


def test_teacher_path_sample_filter_retrain(cli, tmp_path, sqa_source):
    write_jsonl(sqa_source, tmp_path / "src" / "problems.jsonl", per_split=6)
    data, run = tmp_path / "data", tmp_path / "teacher"
    _ok(cli("--quiet", "prepare", tmp_path / "src" / "problems.jsonl", "--out", data, "--json"))
    _ok(cli("--quiet", "train", "--stage", "rationale", "--data", data, "--out", run, "--val-split", "none",
            "--max-output-len", "12", *TINY, "--json"))
    sample = ["--run", run, "--data", data, "--split", "train", "--num-samples", "3", "--temperature", "0.9",
              "--top-p", "0.95", "--json"]
    summary = _ok(cli("--quiet", "generate", *sample, "--seed", "7", "--out", tmp_path / "s1.jsonl"))
    assert summary["sampling"] == {"num_samples": 3, "temperature": 0.9, "top_p": 0.95, "seed": 7}
    _ok(cli("--quiet", "generate", *sample, "--seed", "7", "--out", tmp_path / "s2.jsonl"))
    samples = _rows(tmp_path / "s1.jsonl")
    assert samples == _rows(tmp_path / "s2.jsonl")  # same seed, same samples
    assert all(len(r["samples"]) == 3 and r["prediction"] == r["samples"][0] for r in samples)
    assert any(len(set(r["samples"])) > 1 for r in samples)
    # The tiny run's texts reach no answer, so nothing survives the filter on its own ...
    raw = _ok(cli("--quiet", "rationales", "filter", tmp_path / "s1.jsonl", "--data", data, "--out",
                  tmp_path / "none.jsonl", "--json"))
    non_empty = sum(1 for r in samples for t in r["samples"] if strip_prefix(t))  # empty texts are no rationale
    assert (raw["rationales"], raw["problems_kept"]) == (non_empty, 0)
    # ... so play a teacher that ends each sampled rationale with an answer: the gold option for sample 0 of
    # every other problem, a wrong one otherwise (Fine-tune-CoT's "rationale --> answer").
    records = {r["qid"]: r for r in load_records(data, "train")}
    teacher = []
    for i, row in enumerate(samples):
        rec = records[row["qid"]]
        for k, text in enumerate(row["samples"]):
            right = k == 0 and i % 2 == 0
            choice = rec["choices"][rec["answer"] if right else (rec["answer"] + 1) % len(rec["choices"])]
            teacher.append({"qid": row["qid"], "rationale": f"{text} --> {choice}"})
    (tmp_path / "teacher.jsonl").write_text("".join(json.dumps(t) + "\n" for t in teacher))
    kept = _ok(cli("--quiet", "rationales", "filter", tmp_path / "teacher.jsonl", "--data", data, "--out",
                   tmp_path / "kept.jsonl", "--json"))
    assert (kept["rationales"], kept["correct"], kept["kept"], kept["problems_kept"]) == (18, 3, 3, 3)
    retrained = tmp_path / "student"
    _ok(cli("--quiet", "train", "--stage", "rationale", "--data", data, "--out", retrained, "--val-split", "none",
            "--rationale-source", tmp_path / "kept.jsonl", "--max-output-len", "12", *TINY, "--json"))
    run_cfg = json.loads((retrained / "run_config.json").read_text())
    digest = hashlib.sha256((tmp_path / "kept.jsonl").read_bytes()).hexdigest()
    assert run_cfg["train_examples"] == 3
    assert run_cfg["rationale_source"] == {"source": str((tmp_path / "kept.jsonl").resolve()), "sha256": digest,
                                           "examples": 3, "problems": 3, "problems_without": 3, "duplicates_dropped": 0,
                                           "answer_only_dropped": 0}
    result = cli("train", "--stage", "rationale", "--data", data, "--out", tmp_path / "x", "--val-split", "none",
                 "--rationale-source", tmp_path / "none.jsonl", *TINY)
    assert result.exit_code == 1 and "no rationales in it" in result.stderr  # filter kept none: the file is empty


def test_aokvqa_example_script_uses_real_commands_and_options():
    import shlex
    from pathlib import Path

    from typer.main import get_command

    from mmcot_cli.cli import app

    text = (Path(__file__).resolve().parents[1] / "examples" / "aokvqa.sh").read_text()
    root = get_command(app)
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.lstrip("# ").strip()
        if line.startswith("mmcot "):
            words = shlex.split(line[len("mmcot "):].split(" #", 1)[0])
            cmd = root.commands[words[0]]
            if words[0] == "rationales":
                cmd, words = cmd.commands[words[1]], words[1:]
            known = {o for p in cmd.params for o in list(p.opts) + list(p.secondary_opts)}
            opts = {w for w in words if w.startswith("--")}
            assert opts <= known, (words[0], sorted(opts - known))
            found.append(words[0])
    assert found == ["prepare", "extract", "train", "generate", "train", "generate", "score", "score", "score",
                     "generate", "filter", "train"]
    assert "--format aokvqa --images" in text and "--export-aokvqa" in text
    common = text.split("COMMON=(", 1)[1].split(")", 1)[0]
    train_opts = {o for p in root.commands["train"].params for o in p.opts}
    assert {w for w in shlex.split(common) if w.startswith("--")} <= train_opts
