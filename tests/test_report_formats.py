"""`mmcot report` and `mmcot compare` for every data format (the format registry's scoring kinds): A-OKVQA shows
MC and DA accuracy in both difficult-question filterings and no ScienceQA rows, JSONL data its overall and
per-group accuracy, ScienceQA its categories, with published rows only on ScienceQA's real test split. Each format
× (report, compare table, compare --markdown, compare --json), on real A-OKVQA / JSONL fixtures."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from own_data_fixtures import sqa_source, write_aokvqa, write_jsonl  # noqa: F401 (fixture)
from report_fixture import make_runs

from mmcot_cli.data.records import load_records

NEWLINE_RATIONALE = "Solution: First line <b>bold?</b>\\nSecond line."


class _Text(HTMLParser):
    """The page's visible text (not its style sheet)."""

    def __init__(self):
        super().__init__()
        self.parts, self.in_style = [], False

    def handle_starttag(self, tag, attrs):
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if not self.in_style:
            self.parts.append(data)


def page_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join(parser.parts)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _answer_rows(records, right: int, rationale: str | None = None):
    """Right answers on the first `right` records, the next option on the rest but the last, no letter on it."""
    rows = []
    for i, r in enumerate(records):
        letter = "ABCDE"[r["answer"] if i < right else (r["answer"] + 1) % len(r["choices"])]
        text = "no letter" if right <= i == len(records) - 1 else f"The answer is ({letter})."
        row = {"qid": r["qid"], "prediction": text}
        if rationale is not None:
            row["rationale"] = rationale
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def formats(tmp_path_factory, sqa_source):  # noqa: F811 (the fixture imported above)
    """{format: (DATA_DIR, split, weak predictions, strong predictions)} for aokvqa, jsonl and scienceqa."""
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    root = tmp_path_factory.mktemp("formats")
    runner = CliRunner()
    write_aokvqa(sqa_source, root / "aok-src", root / "coco", per_split=6)
    res = runner.invoke(app, ["--quiet", "prepare", str(root / "aok-src"), "--images", str(root / "coco"), "--out",
                              str(root / "aok")])
    assert res.exit_code == 0, res.output
    write_jsonl(sqa_source, root / "jsonl-src" / "mine.jsonl", per_split=6)
    res = runner.invoke(app, ["--quiet", "prepare", str(root / "jsonl-src" / "mine.jsonl"), "--out", str(root / "jl")])
    assert res.exit_code == 0, res.output
    out = {}
    for name, data in (("aokvqa", root / "aok"), ("jsonl", root / "jl")):
        val = load_records(data, "val")
        weak = _write(root / f"{name}-weak.jsonl", _answer_rows(val, 3, NEWLINE_RATIONALE))
        strong = _write(root / f"{name}-strong.jsonl", _answer_rows(val, len(val)))
        out[name] = (data, "val", weak, strong)
    runs = make_runs(root / "sqa")
    out["scienceqa"] = (runs["data"], "test", runs["text"] / "preds-test.jsonl", runs["vision"] / "preds-test.jsonl")
    return out


def _report(cli, tmp_path, data, split, *inputs):
    out = tmp_path / "report.html"
    res = cli("-q", "report", *inputs, "--data", data, "--split", split, "--out", out)
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    return page, page_text(page)


def _row(page: str, label: str) -> list[str]:
    """The cells of the first table row whose first cell is `label`."""
    match = re.search(rf"<tr><td>{re.escape(label)}</td>(.*?)</tr>", page)
    assert match, label
    return re.findall(r'<td class="n">([^<]*)</td>', match.group(1))


def test_aokvqa_report_shows_mc_and_da_and_no_scienceqa_rows(cli, formats, tmp_path):
    data, split, weak, strong = formats["aokvqa"]
    page, text = _report(cli, tmp_path, data, split, f"weak={weak}", f"strong={strong}")
    assert "A-OKVQA accuracy (%)" in text and "(aokvqa data)" in text
    assert re.search(r"<th>run</th><th>MC</th><th>DA</th><th>MC \(non-difficult\)</th><th>DA \(all\)</th>", page)
    # weak: right on 3 of 6, the next option (2 of 10 direct answers) on 2, no answer on 1; items 2 and 5 are
    # difficult. MC 3/6; DA over the 4 non-difficult 1+1+2/3+2/3; MC non-difficult 2/4; DA all (3+4/3)/6.
    assert _row(page, "weak") == ["50.00", f"{100 * (2 + 4 / 3) / 4:.2f}", "50.00", f"{100 * (3 + 4 / 3) / 6:.2f}"]
    assert _row(page, "strong") == ["100.00"] * 4
    assert re.search(r'<td class="muted">items in this split</td><td class="n">6</td><td class="n">4</td>'
                     r'<td class="n">4</td><td class="n">6</td>', page)
    for absent in ("ScienceQA", "NAT", "IMG", "GPT-3.5", "Multimodal-CoT", "Human", "(published)"):
        assert absent not in text, absent
    assert '<tr class="pub">' not in page
    assert "Accuracy by group (%)" in text and "difficult_direct_answer = true" in text
    assert "eval_predictions.py" in text  # what MC and DA mean
    # Rationale quality over all questions and per group; line breaks rendered, the text escaped.
    assert "Rationale quality by category" in text and "<th>All</th>" in page
    assert "First line &lt;b&gt;bold?&lt;/b&gt;<br>Second line." in page and "\\n" not in page


def test_jsonl_report_shows_overall_and_per_group_accuracy(cli, formats, tmp_path):
    data, split, weak, strong = formats["jsonl"]
    page, text = _report(cli, tmp_path, data, split, f"weak={weak}", f"strong={strong}")
    assert "Accuracy (%)" in text and "<th>Acc</th>" in page
    assert _row(page, "weak") == ["50.00"] and _row(page, "strong") == ["100.00"]
    val = load_records(data, "val")
    subjects = sorted({r["groups"]["subject"] for r in val})
    for subject in subjects:
        assert f"subject = {subject}" in text
        cells = _row(page, f"subject = {subject}")
        total = sum(r["groups"]["subject"] == subject for r in val)
        right = sum(r["groups"]["subject"] == subject for r in val[:3])
        assert cells == [str(total), f"{100 * right / total:.2f}", "100.00"]
    for absent in ("ScienceQA", "NAT", "GPT-3.5", "(published)", "MC", "DA"):
        assert absent not in text, absent


def _test_split_profile(i):
    """Fields with ScienceQA test's profile: 2,017 questions with an image, three subjects, grades 1-12."""
    return {"image": "image.png" if i < 2017 else None, "grade": f"grade{1 + i % 12}",
            "subject": ("natural science", "social science", "language science")[i % 3]}


def test_published_rows_only_on_the_real_scienceqa_test_split(cli, sample_dir, tmp_path, make_record):
    """The 4,241 qids of ScienceQA's test split with its metadata get the published rows; the same qids with
    other fields (every subject/grade the same), or one qid fewer (a subset), get none, and the page says why."""
    qids = json.loads((sample_dir / "pid_splits.json").read_text())["test"]
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "test.jsonl", [make_record(qid=q, answer=1) for q in qids])
    preds = _write(tmp_path / "p.jsonl", [{"qid": q, "prediction": "The answer is (B)."} for q in qids])
    res = cli("-q", "report", preds, "--data", data, "--out", tmp_path / "r0.html", "--gallery", "0")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r0.html").read_text()
    assert '<tr class="pub">' not in page and "0 of its questions have an image" in page
    records = [make_record(qid=q, answer=1, **_test_split_profile(i)) for i, q in enumerate(qids)]
    _write(data / "test.jsonl", records)
    preds = _write(tmp_path / "p.jsonl", [{"qid": q, "prediction": "The answer is (B)."} for q in qids])
    res = cli("-q", "report", preds, "--data", data, "--out", tmp_path / "r.html", "--gallery", "0")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r.html").read_text()
    assert page.count('<tr class="pub">') == 5 and "Multimodal-CoT Large (v1)" in page and "91.68" in page
    # The same records in a DATA_DIR whose manifest says they were carved: not ScienceQA's split, and said why.
    (data / "manifest.json").write_text(json.dumps({"official_splits": False, "carved_from": {"split": "test"}}))
    res = cli("-q", "report", preds, "--data", data, "--out", tmp_path / "r1.html", "--gallery", "0")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r1.html").read_text()
    assert '<tr class="pub">' not in page and "splits are not ScienceQA&#x27;s own (carved from split" in page
    (data / "manifest.json").unlink()
    _write(data / "test.jsonl", records[:-1])
    _write(tmp_path / "p2.jsonl", [{"qid": q, "prediction": "The answer is (B)."} for q in qids[:-1]])
    res = cli("-q", "report", tmp_path / "p2.jsonl", "--data", data, "--out", tmp_path / "r2.html", "--gallery", "0")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r2.html").read_text()
    assert '<tr class="pub">' not in page and "shown only for its real test split" in page


def test_published_table_needs_the_same_qids(make_record):
    from mmcot_cli.reporting.published import (
        PUBLISHED,
        PublishedTable,
        published_for,
        qid_fingerprint,
    )

    records = [make_record(qid=str(q)) for q in (10, 2, 33)]
    table = PublishedTable("X", "test", 3, qid_fingerprint(["2", "10", "33"]), ())
    assert table.applies_to("test", records) and not table.applies_to("val", records)
    assert not table.applies_to("test", records[:2])
    assert not table.applies_to("test", records[:2] + [make_record(qid="34")])
    assert published_for(None, "test", records) is None and published_for("aokvqa", "test", records) is None
    assert published_for("scienceqa", "test", records) is None and "scienceqa" in PUBLISHED


@pytest.mark.parametrize("fmt", ["aokvqa", "jsonl", "scienceqa"])
def test_compare_every_format_table_markdown_json(cli, formats, tmp_path, fmt):
    data, split, weak, strong = formats[fmt]
    res = cli("-q", "score", weak, "--data", data, "--split", split, "--json")
    assert res.exit_code == 0, res.output
    (tmp_path / "weak.json").write_text(res.stdout)
    res = cli("-q", "score", strong, "--data", data, "--split", split, "--json")
    (tmp_path / "strong.json").write_text(res.stdout)
    from_objects = cli("compare", f"weak={tmp_path / 'weak.json'}", f"strong={tmp_path / 'strong.json'}", "--json")
    from_preds = cli("-q", "compare", f"weak={weak}", f"strong={strong}", "--data", data, "--split", split, "--json")
    assert from_objects.exit_code == 0 and from_preds.exit_code == 0, from_objects.output + from_preds.output
    table, scored = json.loads(from_objects.stdout), json.loads(from_preds.stdout)
    assert table["kind"] == scored["kind"] == {"aokvqa": "aokvqa", "jsonl": "groups", "scienceqa": "scienceqa"}[fmt]
    keys = [c["key"] for c in table["columns"]]
    first = {"aokvqa": "mc_accuracy", "jsonl": "accuracy", "scienceqa": "acc_natural"}[fmt]
    assert keys[0] == first and "rationale_rouge_l" in keys
    assert (fmt == "scienceqa") == ("acc_average" in keys)  # no ScienceQA categories for other data
    if fmt != "scienceqa":
        assert any(k.startswith("group:") for k in keys)
        # A predictions file is scored as its data's format, as a score object of it is.
        for a, b in zip(table["rows"], scored["rows"]):
            assert {k: v for k, v in a["values"].items() if not k.startswith("rationale_")} == \
                {k: v for k, v in b["values"].items() if not k.startswith("rationale_")}
    weak_row, strong_row = table["rows"]
    headline = {"aokvqa": "mc_accuracy", "jsonl": "accuracy", "scienceqa": "acc_average"}[fmt]
    assert strong_row["delta"][headline] == round(strong_row["values"][headline] - weak_row["values"][headline], 2)
    assert strong_row["values"][headline] > weak_row["values"][headline]

    res = cli("compare", f"weak={tmp_path / 'weak.json'}", f"strong={tmp_path / 'strong.json'}", "--markdown")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    header, rule, rows = lines[0], lines[1], lines[2:4]
    cells = header.strip("|").split("|")
    assert all(c.strip() for c in cells) and len(cells) > 1, header  # no empty header cell
    assert rule == "|---|" + "---|" * (len(cells) - 1)
    assert all(len(r.strip("|").split("|")) == len(cells) for r in rows), lines
    label = {"aokvqa": "MC", "jsonl": "Acc", "scienceqa": "Avg"}[fmt]
    assert f" {label} " in header and "difference from weak" in res.stdout

    res = cli("compare", f"weak={tmp_path / 'weak.json'}", f"strong={tmp_path / 'strong.json'}")
    assert res.exit_code == 0 and "weak" in res.stdout and "strong" in res.stdout and label in res.stdout


def test_compare_refuses_mixed_kinds_and_bad_shapes(cli, formats, tmp_path):
    objects = {}
    for fmt in ("aokvqa", "scienceqa"):
        data, split, weak, _ = formats[fmt]
        res = cli("-q", "score", weak, "--data", data, "--split", split, "--json")
        objects[fmt] = tmp_path / f"{fmt}.json"
        objects[fmt].write_text(res.stdout)
    res = cli("compare", objects["scienceqa"], objects["aokvqa"], "--markdown")
    assert res.exit_code == 2 and "A-OKVQA" in res.stderr and "ScienceQA" in res.stderr and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1
    for bad, needle in (({"has_answers": True, "data_format": "aokvqa", "aokvqa": 5}, "aokvqa"),
                        ({"has_answers": True, "data_format": "jsonl", "groups": {"s": 5}}, "groups"),
                        ({"has_answers": True, "data_format": ["x"]}, "data_format")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        res = cli("compare", objects["aokvqa"], tmp_path / "bad.json", "--markdown")
        assert res.exit_code == 1 and needle in res.stderr and "bad.json" in res.stderr, res.output


def _colour_pixels(uri: str, rgb=(31, 119, 180)) -> int:
    """Pixels within a small distance of matplotlib's first colour (C0) in a PNG data URI."""
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")).astype(int)
    return int((np.abs(image - np.array(rgb)).sum(axis=2) < 60).sum())


def test_zero_bars_and_one_point_curves_are_visible():
    from mmcot_cli.reporting import charts

    legend_only = _colour_pixels(charts.category_bars(["A", "B"], {"run": [None, None]}))
    assert _colour_pixels(charts.category_bars(["A", "B"], {"run": [0.0, None]})) > legend_only + 200
    # A --tiny run logs one row per stage: one point, drawn as a dot big enough to see (not 1.9 … 2.1 ticks).
    assert _colour_pixels(charts.training_curves({"answer": [{"step": 1, "train_loss": 0.5}]})) > 100


def test_every_registered_format_has_a_report_and_compare_view():
    """A format added to the registry with an existing scoring kind needs nothing else for report and compare."""
    from mmcot_cli.data.readers import FORMATS, SCORING_KINDS
    from mmcot_cli.evaluation.kinds import (
        BREAKDOWN_TITLES,
        HEADLINE_TITLES,
        headline_columns,
    )
    from mmcot_cli.reporting.published import PUBLISHED

    assert set(HEADLINE_TITLES) == set(BREAKDOWN_TITLES) == set(SCORING_KINDS)
    for fmt in FORMATS.values():
        assert fmt.scoring in SCORING_KINDS and headline_columns(fmt.scoring)
        assert fmt.published_rows is None or fmt.published_rows in PUBLISHED
    assert FORMATS["aokvqa"].published_rows is None and FORMATS["jsonl"].published_rows is None


def test_published_rows_need_scienceqa_subjects_and_grades_on_every_question(make_record):
    """The right qids, image count and a mix of subjects and grades, but some questions with a subject or grade
    ScienceQA never uses (data relabelled on the public qids): not the benchmark, and the reason names it."""
    from mmcot_cli.reporting.published import scienceqa_test_metadata

    records = [make_record(qid=str(i), **_test_split_profile(i)) for i in range(4241)]
    assert scienceqa_test_metadata(records) is None
    records[7]["subject"] = "physics"
    assert "1 of its questions have a subject ScienceQA does not use (e.g. 'physics')" in scienceqa_test_metadata(
        records)
    records[7]["subject"], records[9]["grade"] = "natural science", "k"
    assert "a grade ScienceQA does not use (e.g. 'k')" in scienceqa_test_metadata(records)
