"""`--protocol original|mmcot` on score: the original's A–E fallback, its get_scores as the rationale headline, the
protocol recorded in the score object (generate's side: tests/test_generate.py; train's: test_train_protocol.py);
on report (the headline follows the flag or what the predictions record) and on demo (every stage, recorded)."""

from __future__ import annotations

import json
import re

import pytest

from mmcot_cli.evaluation.score import score_records, with_headline


def test_score_original_uses_the_reference_fallback_and_get_scores_headline(make_record):
    records = [make_record(qid="1", choices=["a", "b"], answer=0, solution="x y"),
               make_record(qid="2", choices=["a", "b"], answer=1, solution="z")]
    rows = [{"qid": "1", "prediction": "The answer is (A).", "rationale": "Solution: x y"},
            {"qid": "2", "prediction": "no answer here", "rationale": "Solution: z"}]
    result = with_headline(score_records(records, rows, fallback="reference", seed=3), "original")
    assert result["fallback"] == "reference" and result["num_fail"] == 1
    assert result["rationale"]["headline"] == "original.get_scores"
    assert result["rationale"]["original"]["get_scores"]["rouge_l"] == pytest.approx(100.0, abs=1e-4)


def test_score_cli_records_the_protocol(tmp_path, cli, make_record):
    records = [make_record(qid="1", choices=["a", "b"], answer=0)]
    data = tmp_path / "problems.json"
    data.write_text(json.dumps({r["qid"]: {k: v for k, v in r.items() if k not in ("qid", "image_paths", "caption")}
                                for r in records}))
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"qid": "1", "prediction": "nothing"}) + "\n")
    original = json.loads(cli("score", preds, "--data", data, "--protocol", "original", "--json").stdout)
    assert (original["protocol"], original["fallback"], original["num_fail"]) == ("original", "reference", 1)
    mmcot = json.loads(cli("score", preds, "--data", data, "--json").stdout)
    assert (mmcot["protocol"], mmcot["fallback"]) == ("mmcot", "strict")
    table = cli("score", preds, "--data", data, "--protocol", "original")
    assert "protocol original" in table.stdout
    bad = cli("score", preds, "--data", data, "--protocol", "paper")
    assert bad.exit_code == 2 and "--protocol must be one of mmcot, original" in bad.output


def _rationale_rows(page: str, label: str) -> list[str]:
    """The metric cells of one run's rows in the report's rationale table, in the page's order."""
    return re.findall(rf"<tr><td>{label}</td><td>(.*?)</td>", page)


def test_report_headline_follows_the_flag_or_the_recorded_protocol(cli, tmp_path):
    from report_fixture import make_runs

    from mmcot_cli.reporting.report import ReportConfig, collect

    runs = make_runs(tmp_path)
    out = tmp_path / "r.html"

    def report(*extra):
        res = cli("-q", "report", f"text={runs['text']}", "--data", runs["data"], "--out", out, "--json", *extra)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)["protocols"], out.read_text(encoding="utf-8")

    protocols, page = report()
    rows = _rationale_rows(page, "text")
    assert protocols == {"text": "mmcot"} and rows[0] == "<b>ROUGE-L (mmcot, normalised)</b> · headline (protocol mmcot)"
    assert "ROUGE-L (original get_scores)" in rows and "BLEU-4 (mmcot, normalised)" in rows
    protocols, page = report("--protocol", "original")
    rows = _rationale_rows(page, "text")
    assert protocols == {"text": "original"}
    assert rows[0] == "<b>ROUGE-L (original get_scores)</b> · headline (protocol original)"
    assert "ROUGE-L (mmcot, normalised)" in rows and "ROUGE-L (original validation)" in rows
    assert "Scored under protocol original (text)" in page and "protocol original</li>" in page
    # the original's answer rule too, as `score --protocol original`
    run = collect(ReportConfig(inputs=[str(runs["text"])], data=runs["data"], out=out, protocol="original"))["runs"][0]
    assert (run.protocol, run.score["protocol"], run.score["fallback"]) == ("original", "original", "reference")

    # Predictions that `generate --protocol original` wrote are reported under it; the flag still wins.
    preds = runs["text"] / "preds-test.jsonl"
    rows = [json.loads(line) | {"protocol": "original"} for line in preds.read_text().splitlines()]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert report()[0] == {"text": "original"}
    assert report("--protocol", "mmcot")[0] == {"text": "mmcot"}
    bad = cli("report", runs["text"], "--data", runs["data"], "--out", tmp_path / "x.html", "--protocol", "paper")
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--protocol" in bad.stderr
    assert not (tmp_path / "x.html").exists()


def test_demo_passes_the_protocol_to_every_stage_and_records_it(tmp_path):
    from rich.console import Console

    from mmcot_cli.cli.demo import print_demo_tables
    from mmcot_cli.demo.run import DemoConfig, run_demo

    out = tmp_path / "d"
    summary = run_demo(DemoConfig(out=str(out), size="tiny", modes=("text_only",), n_problems=20,
                                  protocol="original"))
    assert summary["config"]["protocol"] == "original" == json.loads((out / "demo.json").read_text())["config"][
        "protocol"]
    score = summary["text_only"]
    assert (score["protocol"], score["fallback"], score["rationale"]["headline"]) == (
        "original", "reference", "original.get_scores")
    for stage in ("rationale", "answer"):
        run = out / "runs" / "text_only" / stage
        assert json.loads((run / "run_config.json").read_text())["train_config"]["protocol"] == "original"
        rows = [json.loads(line) for line in (run / "preds-test.jsonl").read_text().splitlines()]
        assert rows and all(r["protocol"] == "original" for r in rows)
    assert "headline (protocol original)" in (out / "report.html").read_text(encoding="utf-8")
    console = Console(record=True, width=250)
    print_demo_tables(summary, console)
    text = console.export_text()
    assert "protocol original" in text and text.index("ROUGE-L (original get_scores") < text.index("ROUGE-L (mmcot")


def test_demo_protocol_option(cli, tmp_path):
    from mmcot_cli.demo.settings import DemoSettings

    assert DemoSettings(protocol="original", device="cpu").demo_config().protocol == "original"
    for args in (["--protocol", "original", "--text-model", "llama-scratch"], ["--ablation", "--protocol", "original"],
                 ["--protocol", "paper"]):
        res = cli("demo", "--tiny", "--out", tmp_path / "d", *args)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and "--protocol" in lines[0], (args, res.output)
        assert not (tmp_path / "d").exists()


def test_compare_scores_under_the_protocol_and_labels_its_rationale_columns(cli, tmp_path):
    from report_fixture import make_runs

    runs = make_runs(tmp_path)
    vision, data = runs["vision"], runs["data"]

    def table(*args):
        res = cli("-q", "compare", *args, "--data", data, "--json")
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    def rationale_labels(t):
        return [c["label"] for c in t["columns"] if c["key"].startswith("rationale_")]

    mmcot = table(f"v={vision}")
    assert (mmcot["protocol"], mmcot["headline"], mmcot["rows"][0]["protocol"]) == ("mmcot", "rationale_rouge_l",
                                                                                     "mmcot")
    assert rationale_labels(mmcot)[:3] == ["ROUGE-L (mmcot)", "BLEU-1 (mmcot)", "BLEU-4 (mmcot)"]
    assert rationale_labels(mmcot)[-2:] == ["ROUGE-L (orig. get_scores)", "ROUGE-L (orig. validation)"]
    original = table(f"v={vision}", "--protocol", "original")
    assert (original["protocol"], original["headline"]) == ("original", "rationale_original_rouge_l")
    assert rationale_labels(original)[:2] == ["ROUGE-L (orig. get_scores)", "ROUGE-L (orig. validation)"]
    assert original["rows"][0]["values"] == mmcot["rows"][0]["values"]  # same numbers, another order and headline
    for fmt, needle in (("--markdown", "Protocol original (headline rationale metric: the original's get_scores"),
                        (None, "mmcot's rationale metrics (normalised text)")):
        res = cli("-q", "compare", vision, "--data", data, "--protocol", "original", *([fmt] if fmt else []),
                  terminal_width=250)
        assert res.exit_code == 0 and needle in res.stdout, res.output
        assert res.stdout.index("orig. get_scores") < res.stdout.index("ROUGE-L (mmcot)")
    md = cli("-q", "compare", vision, "--data", data, "--markdown").stdout
    assert md.index("ROUGE-L (mmcot)") < md.index("orig. get_scores") and "Protocol mmcot (headline" in md

    # Predictions that `generate --protocol original` wrote are compared under it; the flag still wins.
    preds = vision / "preds-test.jsonl"
    preds.write_text("".join(json.dumps(json.loads(line) | {"protocol": "original"}) + "\n"
                             for line in preds.read_text().splitlines()))
    assert table(vision)["protocol"] == "original" and table(vision, "--protocol", "mmcot")["protocol"] == "mmcot"

    # A score object keeps its protocol: beside a run of the other one, or under another --protocol, one line, exit 2.
    score = tmp_path / "text.json"
    score.write_text(cli("score", runs["text"] / "preds-test.jsonl", "--data", data, "--json").stdout)  # mmcot
    for args in ([score, vision], [score, "--protocol", "original"], [vision, "--protocol", "paper"]):
        res = cli("compare", *args, "--data", data, "--json")
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and "protocol" in lines[0] and not res.stdout, res.output
    assert table(score, vision, "--protocol", "mmcot")["protocol"] == "mmcot"
