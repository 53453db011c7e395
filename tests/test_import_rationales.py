"""`mmcot rationales import --format mm-cot`: the original's positional predictions_ans_{eval,test}.json mapped to
qids by the DATA_DIR split's order, refused on a count or order mismatch, and read by `--rationales` like any
stage-1 output (provenance in run_config.json).

The labels are made as the original makes them: the gold QCM-E / QCM-LE targets its prompt builder writes
(../shared/scienceqa-sample/golden_prompts.jsonl), tokenized and decoded with a T5 tokenizer of its checkpoint
(../shared/reference-checkpoint) as main.py's batch_decode does.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import SHARED
from hub_cache import COMMIT, populate

from mmcot_cli.data.records import load_records
from mmcot_cli.io import read_jsonl
from mmcot_cli.runs.rationales import load_rationales
from mmcot_cli.training import inputs as stage_inputs
from mmcot_cli.training.config import TrainConfig

CHECKPOINT = SHARED / "reference-checkpoint" / "checkpoint"


@pytest.fixture(scope="module")
def sample_data(sample_dir, tmp_path_factory):
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    out = tmp_path_factory.mktemp("sqa") / "data"
    result = CliRunner().invoke(app, ["--quiet", "prepare", str(sample_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def decoded_targets(sample_dir):
    """qid → {format: the gold target as the original's batch_decode returns it}."""
    if not (CHECKPOINT / "spiece.model").is_file():
        pytest.skip("../shared/reference-checkpoint not present")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(CHECKPOINT))
    out: dict[str, dict[str, str]] = {}
    for line in (sample_dir / "golden_prompts.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["prompt_format"] in ("QCM-E", "QCM-LE") and not row["use_caption"]:
            ids = tok(row["target_normalized"], max_length=512, truncation=True)["input_ids"]
            out.setdefault(row["qid"], {})[row["prompt_format"]] = tok.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    return out


def original_file(path, qids, decoded, fmt="QCM-E", test_file=False, labels=True):
    """What main.py writes: preds/labels by position (+ num_fail and scores in the test file)."""
    obj = {"preds": [f"Solution: generated rationale for problem {q}." for q in qids]}
    if labels:
        obj["labels"] = [decoded[q][fmt] for q in qids]
    if test_file:
        obj = {"num_fail": 0, "scores": {"answer": {"acc": 0.0}}, **obj}
    path.write_text(json.dumps(obj, indent=4))
    return path


def _import(cli, source, data, split, out, *extra):
    return cli("rationales", "import", source, "--format", "mm-cot", "--data", data, "--split", split, "--out", out,
               *extra)


def test_positions_become_qids_in_the_split_order(cli, sample_data, decoded_targets, tmp_path):
    val = [r["qid"] for r in load_records(sample_data, "val")]
    for fmt in ("QCM-E", "QCM-LE"):  # the current scripts' stage 1, and the first release's
        source = original_file(tmp_path / f"predictions_ans_eval_{fmt}.json", val, decoded_targets, fmt)
        result = _import(cli, source, sample_data, "val", tmp_path / f"val-{fmt}.jsonl", "--json")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["rationales"] == len(val) == 50 and summary["order_checked"]
        assert summary["label_mismatches"] == 0
    rows = read_jsonl(tmp_path / "val-QCM-E.jsonl")
    assert [r["qid"] for r in rows] == val
    assert rows[3]["prediction"] == f"Solution: generated rationale for problem {val[3]}."  # verbatim
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert rows[3]["stage"] == "rationale" and rows[3]["source"]["index"] == 3
    loaded = load_rationales(tmp_path / "val-QCM-LE.jsonl", "val")
    assert loaded.provenance()["imported_from"] == {"format": "mm-cot", "path": str(source.resolve()),
                                                    "sha256": digest, "split": "val"}
    # The test file (num_fail, scores, preds, labels) imports the same way.
    test = [r["qid"] for r in load_records(sample_data, "test")]
    source = original_file(tmp_path / "predictions_ans_test.json", test, decoded_targets, test_file=True)
    assert _import(cli, source, sample_data, "test", tmp_path / "test.jsonl").exit_code == 0


def test_count_and_order_mismatches_are_refused(cli, sample_data, decoded_targets, tmp_path):
    val = [r["qid"] for r in load_records(sample_data, "val")]
    test = [r["qid"] for r in load_records(sample_data, "test")]
    out = tmp_path / "r.jsonl"
    cases = [
        (original_file(tmp_path / "short.json", val[:-1], decoded_targets), "49 predictions, but split 'val'"),
        (original_file(tmp_path / "shifted.json", val[1:] + val[:1], decoded_targets), "not in the order of split"),
        (original_file(tmp_path / "other.json", test, decoded_targets), "not in the order of split 'val'"),
    ]
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"preds": ["The answer is (A)."] * 50, "labels": ["The answer is (B)."] * 50}))
    cases.append((answers, "answer-stage file"))
    cases.append((tmp_path / "nope.json", "no such file or directory"))
    for source, message in cases:
        result = _import(cli, source, sample_data, "val", out)
        assert result.exit_code == 1 and message in result.stderr, (source, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    # no labels: the count is all that can be checked, and a warning says so
    source = original_file(tmp_path / "bare.json", val, decoded_targets, labels=False)
    result = _import(cli, source, sample_data, "val", out)
    assert result.exit_code == 0 and "order cannot be checked" in result.stderr
    result = _import(cli, source, sample_data, "val", tmp_path / "r2.jsonl", "--strip-answer")
    assert result.exit_code == 2 and "--format teacher" in result.stderr
    result = cli("rationales", "import", source, "--format", "nope", "--data", sample_data, "--out", out)
    assert result.exit_code == 2 and "mm-cot" in result.stderr
    # --revision picks a hub revision; with a local file it is refused (as import-run / import-features do)
    result = _import(cli, source, sample_data, "val", tmp_path / "r3.jsonl", "--revision", "v1")
    assert result.exit_code == 2 and "--revision applies to a hub id" in result.stderr
    assert not (tmp_path / "r3.jsonl").exists()


def test_imported_rationales_feed_stage_2_with_provenance(cli, sample_data, decoded_targets, tmp_path):
    val = [r["qid"] for r in load_records(sample_data, "val")]
    source = original_file(tmp_path / "predictions_ans_eval.json", val, decoded_targets)
    assert _import(cli, source, sample_data, "val", tmp_path / "val.jsonl").exit_code == 0
    # `--rationales` reads it by qid: the prompts carry each problem's own imported rationale
    result = cli("prompts", sample_data, "--split", "val", "--format", "QCMG-A", "--rationales", tmp_path / "val.jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(f"generated rationale for problem {r['qid']}." in r["source"] for r in rows)
    # the original's file itself is refused where --rationales is read, with the command that converts it
    result = cli("prompts", sample_data, "--split", "val", "--format", "QCMG-A", "--rationales", source)
    assert result.exit_code == 1 and "--format mm-cot" in result.stderr
    # train records where they came from (run_config.json → rationales.val.imported_from)
    cfg = TrainConfig(stage="answer", data_dir=str(sample_data), text_model="t5-scratch", out_dir=str(tmp_path / "r"),
                      rationales=str(tmp_path / "val.jsonl")).resolved()
    _, val_r, info = stage_inputs.stage_rationales(cfg)
    assert info["val"]["imported_from"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert info["val"]["imported_from"]["format"] == "mm-cot" and val_r.for_qids(val[:1])[0].startswith("Solution:")


def test_a_released_run_folders_file_by_hub_id(cli, sample_data, decoded_targets, tmp_path, monkeypatch):
    """The file inside a released run folder on the hub, read offline from the Hugging Face cache: the commit is
    part of the provenance."""
    test = [r["qid"] for r in load_records(sample_data, "test")]
    source = original_file(tmp_path / "predictions_ans_test.json", test, decoded_targets, test_file=True)
    populate(tmp_path / "cache", "cooelf/mm-cot", {"models/mm-cot-base-rationale/predictions_ans_test.json": source})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _import(cli, "cooelf/mm-cot/models/mm-cot-base-rationale/predictions_ans_test.json", sample_data, "test",
                     tmp_path / "r.jsonl", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hub"]["commit"] == COMMIT
    assert load_rationales(tmp_path / "r.jsonl", "test").provenance()["imported_from"]["hub"] == {
        "repo": "cooelf/mm-cot", "path": "models/mm-cot-base-rationale/predictions_ans_test.json",
        "revision": "main", "commit": COMMIT}
