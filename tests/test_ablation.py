"""`mmcot demo --ablation` at the tiny size: every setting runs through the real pipeline with the prompt format,
captions and features it claims, and the comparison tables and the report are written."""

from __future__ import annotations

import json

import pytest

from mmcot_cli.demo.ablation import CAPTIONS, SETTINGS, AblationConfig, generic_captions, run_ablation
from mmcot_cli.errors import UnknownNameError

pytestmark = pytest.mark.slow  # six tiny trainings in two worker processes: ~45 s on 2 cores


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    out = tmp_path_factory.mktemp("ablation") / "out"
    res = CliRunner().invoke(app, ["--quiet", "demo", "--ablation", "--tiny", "--problems", "40", "--out", str(out),
                                   "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def _cfg(path):
    return json.loads((path / "run_config.json").read_text())


def test_each_setting_is_what_it_claims(tiny):
    out, summary = tiny
    assert list(summary["settings"]) == [s.name for s in SETTINGS]
    runs = out / "runs"
    for name, fmt in (("one_stage_qcm_a", "QCM-A"), ("one_stage_qcm_ra", "QCM-EA"), ("one_stage_qcm_ar", "QCM-AL")):
        cfg = _cfg(runs / name / "answer")
        assert cfg["prompt_format"] == fmt and cfg["feature_shape"] is None and not cfg["use_caption"]
        assert not (runs / name / "rationale").exists()
    for name, caption, vision in (("two_stage_text", False, False), ("two_stage_captions", True, False),
                                  ("two_stage_vision", False, True)):
        r, a = _cfg(runs / name / "rationale"), _cfg(runs / name / "answer")
        assert (r["prompt_format"], a["prompt_format"]) == ("QCM-E", "QCMG-A")
        assert r["use_caption"] is caption and a["use_caption"] is caption
        assert (r["feature_shape"] is not None) is vision and (a["feature_shape"] is not None) is vision
        assert a["rationales"]["train_on"] == "generated"
    # The captioned data set really carries captions on its image questions (and only there).
    rows = [json.loads(line) for line in (out / "data-captions" / "test.jsonl").read_text().splitlines()]
    assert rows and all(bool(r["caption"]) == bool(r["image"]) for r in rows)
    assert {r["caption"] for r in rows if r["image"]} <= {text for _, text in CAPTIONS}


def test_tables_report_and_summary_agree(tiny):
    out, summary = tiny
    md = (out / "ablation.md").read_text()
    assert "| One-stage QCM→RA | QCM-EA | 67.86 |" in md and "| Two-stage + vision features | QCM-E → QCMG-A | 84.91" in md
    for s in SETTINGS:
        values = summary["settings"][s.name]["values"]
        assert values["acc_average"] is not None and f"| {s.title} |" in md
        # one-stage RA/AR and every two-stage setting have rationales to score; QCM-A has none
        assert (values["rationale_rouge_l"] is None) == (s.name == "one_stage_qcm_a")
    page = (out / "report.html").read_text()
    # The gallery pairs the two-stage text-only run with the vision run (same QCMG-A pipeline).
    assert "wrong answers of <b>Two-stage, text only</b>" in page
    assert "Corrected by vision (Two-stage + vision features)" in page
    assert json.loads((out / "ablation.json").read_text()) == summary
    assert summary["paths"]["report"].endswith("report.html")


def test_generic_captions_name_the_object_not_the_fact():
    problems = {"1": {"image": "image.png", "question": "Will these magnets attract or repel?"},
                "2": {"image": None, "question": "What should Ann do?"},
                "3": {"image": "image.png", "question": "Look at the traffic light. What should a driver do?"}}
    assert generic_captions(problems) == {"1": "Two bar magnets lie side by side.",
                                          "3": "A traffic light on a white background."}


def test_unknown_setting_fails_before_writing(tmp_path):
    with pytest.raises(UnknownNameError, match="one_stage_qcm_a"):
        run_ablation(AblationConfig(out=str(tmp_path / "x"), size="tiny", settings=("nope",)))
    assert not (tmp_path / "x").exists()
