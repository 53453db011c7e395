"""Prompt formats: parity with the reference builder on the real sample, the inherited quirks, `mmcot prompts`."""

import json

import pytest
from conftest import build_record

from mmcot_cli.data.prompts import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    PROMPT_FORMATS,
    REFERENCE_FORMATS,
    answer_letter,
    build_prompt,
    build_prompt_raw,
    uses_rationale,
)
from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, UnknownNameError


@pytest.fixture(scope="session")
def sample_data(sample_dir, tmp_path_factory):
    """The sample prepared once per session (train/val/test: 50 problems each)."""
    out = tmp_path_factory.mktemp("sample-data")
    prepare(PrepareConfig(source=sample_dir, out=out))
    return out


@pytest.fixture(scope="session")
def sample_records(sample_data):
    return {r["qid"]: r for split in ("train", "val", "test") for r in load_records(sample_data, split)}


@pytest.fixture(scope="session")
def golden(sample_dir):
    with open(sample_dir / "golden_prompts.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _record(**overrides):
    return build_record(**{"qid": "7", "hint": "A hint.", "caption": "A cap.", "lecture": "Heat moves.\nIt flows.",
                           "solution": "Fire is hot.", **overrides})


def test_golden_parity_all_rows(golden, sample_records):
    assert len(golden) == 2100
    mismatches = []
    for row in golden:
        rec = sample_records[row["qid"]]
        source, target = build_prompt(rec, row["prompt_format"], use_caption=row["use_caption"])
        if (source, target) != (row["source_normalized"], row["target_normalized"]):
            mismatches.append((row["qid"], row["prompt_format"], row["use_caption"], source, target,
                               row["source_normalized"], row["target_normalized"]))
    assert not mismatches, f"{len(mismatches)} of 2100 rows differ; first: {mismatches[:3]}"


def test_golden_parity_raw_strings(golden, sample_records):
    """Before collapsing whitespace too: the raw builder matches the reference's raw source/target."""
    bad = [(r["qid"], r["prompt_format"]) for r in golden
           if build_prompt_raw(sample_records[r["qid"]], r["prompt_format"], r["use_caption"]) != (r["source"],
                                                                                                  r["target"])]
    assert not bad, f"{len(bad)} raw mismatches, first: {bad[:5]}"


def test_format_catalogue():
    assert len(INPUT_FORMATS) == 14 and len(OUTPUT_FORMATS) == 11
    assert len(PROMPT_FORMATS) == 154
    assert set(REFERENCE_FORMATS) <= set(PROMPT_FORMATS)
    assert uses_rationale("QCMG-A") and uses_rationale("CQMG-LE") and not uses_rationale("QCM-A")


def test_every_format_builds():
    for fmt in PROMPT_FORMATS:
        source, target = build_prompt(_record(), fmt)
        assert source.endswith("Answer:" if fmt.endswith("-A") else "Solution:"), fmt
        assert "  " not in source and "\n" not in source and "\n" not in target, fmt


@pytest.mark.parametrize("bad", ["QCM", "QCM-X", "XYZ-A", "qcm-a", "QCM-A-A", ""])
def test_unknown_format_lists_parts(bad):
    with pytest.raises(UnknownNameError) as exc:
        build_prompt(_record(), bad)
    message = str(exc.value)
    assert exc.value.exit_code == 2 and "\n" not in message
    assert "QCMG" in message and "LEA" in message


def test_quirks():
    rec = _record()
    # Newlines in lecture/solution become a literal backslash-n that survives the whitespace collapse.
    _, target = build_prompt(rec, "QCM-LE")
    assert target == "Solution: Heat moves.\\nIt flows. Fire is hot.."  # LE: extra trailing period
    # AL carries the solution, AE the lecture (names swapped in the reference).
    assert build_prompt(rec, "QCM-AL")[1] == "The answer is (B). BECAUSE: Fire is hot."
    assert build_prompt(rec, "QCM-AE")[1] == "The answer is (B). BECAUSE: Heat moves.\\nIt flows."
    assert build_prompt(rec, "QCM-E")[1] == "Solution: Fire is hot."
    assert build_prompt(rec, "QCM-A") == (
        "Question: Which is hot? Context: A hint. Options: (A) ice (B) fire Answer:", "The answer is (B).")
    # Caption joins the hint only with use_caption; an empty context is "N/A".
    assert "Context: A hint. A cap. Options" in build_prompt(rec, "QCM-A", use_caption=True)[0]
    assert "Context: N/A Options" in build_prompt(_record(hint="", caption="x"), "QCM-A")[0]
    assert "Context: A cap. Options" in build_prompt(_record(hint=""), "QCM-A", use_caption=True)[0]
    # Every "Answer:" is removed from the target, even inside the lecture.
    assert build_prompt(_record(lecture="Answer: yes"), "QCM-LA")[1] == "yes The answer is (B)."
    # Empty lecture and solution leave a trailing "BECAUSE:" (as the reference does; golden qid 58).
    assert build_prompt(_record(lecture="", solution=""), "QCM-ALE")[1] == "The answer is (B). BECAUSE:"


def test_stage_two_rationale():
    rec = _record()
    gold_source, _ = build_prompt(rec, "QCMG-A")
    assert gold_source.endswith("Options: (A) ice (B) fire Solution: Heat moves.\\nIt flows. Fire is hot. Answer:")
    source, target = build_prompt(rec, "QCMG-A", rationale="Solution: generated\ntext.")
    assert source.endswith("(B) fire Solution: generated text. Answer:")
    assert target == "The answer is (B)."
    assert build_prompt(rec, "CQMG-A", rationale="R").__getitem__(0).startswith("Context: A hint. Question:")
    # Formats without a rationale slot ignore it.
    assert build_prompt(rec, "QCM-A", rationale="R") == build_prompt(rec, "QCM-A")


def test_answer_letter_and_options():
    assert answer_letter(_record()) == "B"
    assert answer_letter(_record(), options=("1", "2")) == "2"
    assert build_prompt(_record(), "QCM-A", options=("1", "2"))[1] == "The answer is (2)."
    with pytest.raises(DataError, match="qid 7"):
        answer_letter(_record(answer=5))
    with pytest.raises(DataError, match="option letters"):
        build_prompt(_record(choices=list("abcdef")), "QCM-A")


# --------------------------------------------------------------------------- mmcot prompts

def test_prompts_command(cli, sample_data, sample_records):
    result = cli("prompts", sample_data, "--split", "test", "--format", "QCM-E", "--limit", "3")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3 and all(set(r) == {"qid", "source", "target"} for r in rows)
    test_qids = [r["qid"] for r in load_records(sample_data, "test")]
    assert [r["qid"] for r in rows] == test_qids[:3]
    for r in rows:
        assert (r["source"], r["target"]) == build_prompt(sample_records[r["qid"]], "QCM-E")

    # spelled as train spells it, too
    same = cli("prompts", sample_data, "--split", "test", "--prompt-format", "QCM-E", "--limit", "3")
    assert same.exit_code == 0 and same.stdout == result.stdout, same.output

    captioned = cli("prompts", sample_data, "--split", "test", "--format", "QCM-A", "--use-caption")
    rows = [json.loads(line) for line in captioned.stdout.splitlines()]
    assert len(rows) == 50
    assert any(r["source"] != build_prompt(sample_records[r["qid"]], "QCM-A")[0] for r in rows)
    assert all(r["source"] == build_prompt(sample_records[r["qid"]], "QCM-A", use_caption=True)[0] for r in rows)


def test_prompts_command_rationales(cli, sample_data, tmp_path):
    qids = [r["qid"] for r in load_records(sample_data, "val")]
    preds = tmp_path / "preds-val.jsonl"
    preds.write_text("".join(json.dumps({"qid": q, "prediction": f"Solution: made up {q}.", "stage": "rationale"})
                             + "\n" for q in qids))
    for source in (preds, tmp_path):  # a predictions file, or a RUN_DIR holding preds-<split>.jsonl
        result = cli("prompts", sample_data, "--split", "val", "--format", "QCMG-A", "--rationales", source)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert all(r["source"].endswith(f"Solution: made up {r['qid']}. Answer:") for r in rows)

    preds.write_text(json.dumps({"qid": qids[0], "prediction": "Solution: x"}) + "\n")
    result = cli("prompts", sample_data, "--split", "val", "--format", "QCMG-A", "--rationales", preds)
    assert result.exit_code == 1 and f"qid {qids[1]}" in result.stderr and result.stdout == ""

    result = cli("prompts", sample_data, "--split", "val", "--format", "QCM-A", "--rationales", preds)
    assert result.exit_code == 2 and "QCMG" in result.stderr


def test_prompts_command_errors(cli, sample_data):
    result = cli("prompts", sample_data, "--format", "QCM-Z")
    assert result.exit_code == 2 and "unknown prompt format 'QCM-Z'" in result.stderr
    result = cli("prompts", sample_data, "--split", "minival")
    assert result.exit_code == 2
    assert "splits present: test, train, val" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_prompts_default_is_what_train_trains_on(cli, sample_data, tmp_path):
    """Issue 25: `mmcot prompts` showed QCM-LE while `train --stage rationale` trains on QCM-E. Both now take the
    default from the stage presets; --stage answer shows QCMG-A (gold rationale), --format still overrides."""
    from mmcot_cli.training.config import TrainConfig

    def shown(*args):
        res = cli("prompts", sample_data, "--split", "val", "--limit", "3", *args)
        assert res.exit_code == 0, res.output
        return res.stdout

    trained = TrainConfig(stage="rationale", data_dir=str(sample_data), text_model="t5-scratch",
                          out_dir=str(tmp_path / "r")).resolved().prompt_format
    assert trained == "QCM-E" and shown("--stage", "rationale") == shown("--format", trained)
    assert TrainConfig(stage="answer", data_dir=str(sample_data), text_model="t5-scratch", out_dir=str(tmp_path / "a"),
                       rationales=str(tmp_path)).resolved().prompt_format == "QCMG-A"
    assert shown("--stage", "answer") == shown("--format", "QCMG-A")
    assert shown() == shown("--stage", "rationale") != shown("--format", "QCM-LE")
    assert shown("--stage", "answer", "--format", "QCM-A") == shown("--format", "QCM-A")
    bad = cli("prompts", sample_data, "--stage", "teacher")
    assert bad.exit_code == 2 and "rationale" in bad.stderr and "answer" in bad.stderr
