"""`mmcot report` and `mmcot compare` on hand-written runs with known right and wrong answers."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from report_fixture import EVIL, make_runs


@pytest.fixture
def runs(tmp_path):
    return make_runs(tmp_path)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.refs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.refs.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def _report(cli, runs, tmp_path, *extra):
    out = tmp_path / "report.html"
    res = cli("-q", "report", f"text={runs['text']}", f"vision={runs['vision']}", "--data", runs["data"], "--out",
              out, "--json", *extra)
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(page)
    return json.loads(res.stdout), page, parser


def test_report_is_self_contained_escaped_and_has_every_section(cli, runs, tmp_path):
    summary, page, parser = _report(cli, runs, tmp_path)
    assert summary["runs"] == ["text", "vision"] and summary["gallery_items"] == 4
    assert summary["corrected_by_vision"] == {"k": 3, "n": 4}
    # Nothing from the network: every src/href is a data: URI, and there is no script.
    assert parser.refs and all(ref.startswith("data:") for ref in parser.refs)
    assert "<script" not in page and EVIL not in page and "&lt;script&gt;alert(&quot;x&quot;)" in page
    text = " ".join(parser.text)
    # Scores (text 4/8 right → 50.00, vision 6/8 → 75.00). Eight items are not ScienceQA's test split: no
    # published rows beside them (test_report_formats.py shows them on the real split), and the page says why.
    # SOC and NO have no items here: their columns are left out (six before Avg), named once.
    assert re.search(r"<td>text</td>(<td class=\"n\">[^<]*</td>){6}<td class=\"n\">50.00</td>", page)
    assert re.search(r"<td>vision</td>(<td class=\"n\">[^<]*</td>){6}<td class=\"n\">75.00</td>", page)
    assert '<tr class="pub">' not in page and "Multimodal-CoT Large (v1)" not in text
    assert "Published ScienceQA results are shown only for its real test split (4,241 questions with its metadata)" in text
    assert "Corrected by vision (vision): 3 of 4 (75.0%)." in text
    # The runs list says how answers were decoded where the rows record it (only the vision run's do).
    assert text.count("answers decoded within options: 8/8") == 1
    # Charts: category bars and one training-curve figure per run; thumbnails for gallery items with an image.
    charts = [i for i in parser.imgs if i.get("class") == "chart"]
    assert len(charts) == 3 and all(i["src"].startswith("data:image/png;base64,") for i in charts)
    thumbs = [i for i in parser.imgs if i.get("class") != "chart"]
    assert len(thumbs) == 3 and all(i["src"].startswith("data:image/jpeg;base64,") for i in thumbs)
    assert "decompression bomb" in text  # qid 5's image is refused, not decoded
    # Rationale metrics per category: the text run's wrong rationales lower its ROUGE-L below the vision run's.
    assert "Rationale quality by category" in text and "ROUGE-L" in text and "BLEU-4" in text
    assert "physics" in text and "vocabulary" in text  # per-topic table
    # Order: the accuracy tables (categories, then topics) come before the charts and the 50-card gallery.
    assert page.index("Accuracy by category (%)") < page.index("Accuracy by topic (%)") < page.index("<h2>Charts")
    assert page.index("Accuracy by topic (%)") < page.index("Error gallery")


def test_report_rationale_rouge_per_category_and_gallery_seed(runs, tmp_path):
    from mmcot_cli.reporting.report import ReportConfig, collect

    cfg = ReportConfig(inputs=[str(runs["text"]), str(runs["vision"])], data=runs["data"], out=tmp_path / "x.html",
                       gallery=2, seed=3)
    report = collect(cfg)
    text, vision = report["runs"]
    assert text.label == "text/answer" and text.vision is False and vision.vision is True
    # Right rationales match the gold exactly (100); a wrong colour word costs ROUGE-L.
    assert vision.rationale_by_category["per_qid_rouge_l"]["1"] == 100.0
    assert text.rationale_by_category["per_qid_rouge_l"]["1"] < 100.0
    assert text.rationale_by_category["acc_average"]["rouge_l"] < vision.rationale_by_category["acc_average"][
        "rouge_l"]
    assert set(text.curves) == {"rationale", "answer"}
    picked = [it["qid"] for it in report["gallery"]["items"]]
    assert len(picked) == 2 and set(picked) <= {"1", "2", "3", "5"}
    assert picked == [it["qid"] for it in collect(cfg)["gallery"]["items"]]  # same seed, same sample


def test_report_errors_are_one_line_and_write_nothing(cli, runs, tmp_path):
    out = tmp_path / "r.html"
    res = cli("report", str(tmp_path / "nope"), "--data", runs["data"], "--out", out)
    assert res.exit_code == 1 and "nope" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".r.html*"))
    (runs["text"] / "preds-test.jsonl").write_text('{"qid": "1", "prediction": 3}\n')
    res = cli("report", runs["text"], "--data", runs["data"], "--out", out)
    assert res.exit_code == 1 and "preds-test.jsonl:1" in res.stderr and not out.exists()


def test_thumbnail_refuses_decompression_bombs_before_decoding(tmp_path):
    from report_fixture import bomb_png

    from mmcot_cli.data.images import ImageError, thumbnail_bytes

    bomb_png(tmp_path / "big.png", 10_000, 8_000)  # 80 MP: above images.MAX_PIXELS (64 MP), below Pillow's own
    with pytest.raises(ImageError, match="decompression bomb"):
        thumbnail_bytes(tmp_path / "big.png", "7")
    from PIL import Image

    Image.new("RGBA", (900, 300), (0, 0, 255, 0)).save(tmp_path / "ok.png")
    data, size = thumbnail_bytes(tmp_path / "ok.png", "8", max_side=192)
    assert size == (192, 64) and data[:2] == b"\xff\xd8" and len(data) < 20_000


def test_compare_score_objects_and_predictions_with_differences(cli, runs, tmp_path):
    res = cli("score", runs["text"] / "preds-test.jsonl", "--data", runs["data"], "--json")
    (tmp_path / "text.json").write_text(res.stdout)
    res = cli("compare", f"text={tmp_path / 'text.json'}", f"vision={runs['vision']}", "--data", runs["data"],
              "--json")
    assert res.exit_code == 0, res.output
    table = json.loads(res.stdout)
    text, vision = table["rows"]
    assert text["values"]["acc_average"] == 50.0 and vision["values"]["acc_average"] == 75.0
    assert text["delta"] is None and vision["delta"]["acc_average"] == 25.0
    # The vision run's stage-1 rationales: 6 exact (100), 2 with one wrong word of 4 (ROUGE-L F 75).
    assert vision["values"]["rationale_rouge_l"] == pytest.approx((6 * 100 + 2 * 75) / 8)
    assert text["values"]["rationale_rouge_l"] is None  # a score object of answers carries none
    res = cli("compare", f"text={tmp_path / 'text.json'}", f"vision={runs['vision']}", "--data", runs["data"],
              "--markdown")
    lines = res.stdout.splitlines()
    assert lines[0].startswith("| setting | NAT |") and "| vision |" in lines[3] and "75.00 (+25.00)" in lines[3]
    assert "difference from text" in res.stdout
    # One input has nothing to differ from: no difference caption, in Markdown or in the table.
    for fmt in ("--markdown", None):
        res = cli("compare", f"vision={runs['vision']}", "--data", runs["data"], *([fmt] if fmt else []))
        assert res.exit_code == 0, res.output
        assert "difference from" not in res.stdout and "vision" in res.stdout


def test_compare_tells_apart_two_inputs_with_the_same_label(cli, runs):
    """A RUN_DIR and its own preds-test.jsonl both default to the run's name; the rows get (1), (2) as in report."""
    res = cli("compare", runs["vision"], runs["vision"] / "preds-test.jsonl", "--data", runs["data"], "--json")
    assert res.exit_code == 0, res.output
    first, second = json.loads(res.stdout)["rows"]
    assert first["label"] != second["label"] and first["label"].endswith("(1)") and second["label"].endswith("(2)")


def test_compare_usage_errors(cli, runs, tmp_path):
    res = cli("compare", runs["vision"])
    assert res.exit_code == 2 and "--data" in res.stderr
    res = cli("compare", tmp_path / "missing.json")
    assert res.exit_code == 1 and "missing.json" in res.stderr


def test_report_puts_baselines_beside_accuracy_and_names_a_collapsed_run(cli, runs, tmp_path):
    # Eight 4-choice items whose answers are A, B, C, D twice each: chance and majority class are both 25 %.
    always_a = tmp_path / "always_a.jsonl"
    always_a.write_text("".join(json.dumps({"qid": str(q), "prediction": "The answer is (A).", "stage": "answer"})
                                + "\n" for q in range(1, 9)))
    out = tmp_path / "report.html"
    res = cli("report", f"text={runs['text']}", f"prior={always_a}", "--data", runs["data"], "--out", out)
    assert res.exit_code == 0, res.output
    assert "every answer is (A): all 8 predictions chose the same option" in " ".join(res.stderr.split())
    page = out.read_text(encoding="utf-8")
    assert re.search(r'baseline: chance</td>(<td class="n">[^<]*</td>){6}<td class="n">25.00</td>', page)
    assert re.search(r'baseline: majority class</td>(<td class="n">[^<]*</td>){6}<td class="n">25.00</td>', page)
    assert "prior: every answer is (A) — all 8 predictions chose the same option" in page
    assert "text: every answer is" not in page


def test_report_names_a_predictions_file_input_instead_of_a_question_mark(cli, runs, tmp_path):
    preds = tmp_path / "my preds.jsonl"
    preds.write_bytes((runs["text"] / "preds-test.jsonl").read_bytes())
    out = tmp_path / "report.html"
    res = cli("-q", "report", preds, "--data", runs["data"], "--out", out, "--gallery", "0")
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    entry = re.search(r"<li><b>my preds</b>: (.*?)</li>", page).group(1)
    assert "predictions file my preds.jsonl" in entry and "?" not in entry and "prompt format" in entry
    assert "No training curves for my preds: a predictions file" in page and "No metrics.jsonl" not in page


def test_report_names_empty_categories_once_and_drops_their_columns(cli, runs, tmp_path, monkeypatch):
    """The fixture has no social-science and no no-context item: no SOC/NO column in any table, no slot in the
    bars (so no "n/a" label), one line saying so."""
    from mmcot_cli.reporting import charts

    drawn = []
    real = charts.category_bars
    monkeypatch.setattr(charts, "category_bars", lambda labels, *a, **k: drawn.append(labels) or real(labels, *a, **k))
    _, page, parser = _report(cli, runs, tmp_path)
    text = " ".join(parser.text)
    assert text.count("no items: SOC, NO") == 1
    assert "<th>SOC</th>" not in page and "<th>NO</th>" not in page
    assert page.count("<th>NAT</th>") == 2  # the accuracy and the rationale tables
    assert drawn == [["NAT", "LAN", "TXT", "IMG", "G1-6", "G7-12", "Avg"]]


def test_training_curves_read_right_with_one_point(monkeypatch):
    """A one-epoch answer run beside a three-epoch rationale run: the lone point is labelled as the only one, its
    panel's x-axis is whole steps around it, validation accuracy is drawn on 0-100 with a dashed chance line."""
    from mmcot_cli.reporting import charts

    figs = []
    monkeypatch.setattr(charts, "_data_uri", lambda fig: figs.append(fig) or "data:")
    curves = {"rationale": [{"epoch": e, "step": 3 * e, "train_loss": 3.0 / e} for e in (1, 2, 3)],
              "answer": [{"epoch": 1, "step": 2, "train_loss": 1.2, "val_accuracy": 37.5}]}
    charts.training_curves(curves, chance=(25.0, "chance (val split)"))
    loss, acc = figs[0].axes
    assert acc.get_ylim() == (0, 100)
    dashed = [line for line in acc.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 25.0 and dashed[0].get_label() == "chance (val split)"
    assert [t.get_text() for t in acc.texts] == ["37.5\n(only point: epoch 1)"]
    assert acc.get_xlim() == (1, 3) and list(acc.get_xticks()) == [1, 2, 3]
    assert [t.get_text() for t in loss.texts] == ["1.2\n(only point: epoch 1)"]  # the 3-point series: no label
    assert loss.get_xlim()[0] < 2  # room left of the lone point at the first step for its label


def test_validation_chance_is_over_the_items_validated_on(tmp_path, make_record):
    from mmcot_cli.reporting.report import validation_chance
    from mmcot_cli.runs.meta import RunMeta

    data = tmp_path / "data"
    data.mkdir()
    val = [make_record(qid=str(q), choices=["a", "b"] if q < 3 else ["a", "b", "c", "d"]) for q in range(1, 6)]
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    test = [make_record(qid="9", choices=["a", "b", "c"])]
    meta = RunMeta.from_dict({"prompt_format": "QCMG-A", "train_config": {"val_split": "val", "limit_val": 2}})
    assert validation_chance(meta, data, "test", test) == (50.0, "chance (val split)")  # the first 2: 2 options
    meta.train_config = {"val_split": "val"}
    assert validation_chance(meta, data, "test", test) == (35.0, "chance (val split)")  # (2 × 1/2 + 3 × 1/4) / 5
    meta.train_config = {"val_split": "dev"}  # not in DATA: the report split's items, said so
    assert validation_chance(meta, data, "test", test) == (33.33, "chance (test items)")
    assert validation_chance(RunMeta.from_dict({"prompt_format": "QCM-E"}), data, "test", test) is None


def _rationale_section(runs, *inputs):
    from mmcot_cli.reporting.html import render
    from mmcot_cli.reporting.report import ReportConfig, collect

    page = render(collect(ReportConfig(inputs=[str(i) for i in inputs], data=runs["data"], gallery=0)))
    section = page[page.index("<h2>Rationale quality"):page.index("<h2>Error gallery")]
    return section, " ".join(re.sub(r"<[^>]+>", " ", section).split())


def _rewrite(path, change):
    rows = [change(json.loads(line)) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rationale_table_says_why_instead_of_a_table_of_dashes(runs, tmp_path):
    # A predictions file has no rationales: said, with the reason, beside the run that has some.
    bare = tmp_path / "bare.jsonl"
    bare.write_bytes((runs["vision"] / "preds-test.jsonl").read_bytes())
    section, text = _rationale_section(runs, runs["text"], bare)
    assert "<table>" in section and "No rationales from bare (a predictions file whose rows carry no rationale" in text
    # Stage-1 rationales for other questions: nothing is scored, and the page says so instead of a row of "—".
    stage1 = runs["text"].parent / "rationale" / "preds-test.jsonl"
    original = stage1.read_text()
    _rewrite(stage1, lambda r: {**r, "qid": f"x{r['qid']}"})
    section, text = _rationale_section(runs, runs["text"])
    assert "<table>" not in section and "none of its 8 rationales (stage-1 run" in text and "—" not in section
    stage1.write_text(original)
    # Every rationale empty: the table stays (zeros are scores) and a line says why get_scores shows "—".
    _rewrite(stage1, lambda r: {**r, "prediction": ""})
    section, text = _rationale_section(runs, runs["text"])
    assert "<table>" in section and "text/answer: every rationale is empty" in text
    stage1.write_text(original)
    # Gold without solutions: no table at all, one line why.
    _rewrite(runs["data"] / "test.jsonl", lambda r: {**r, "solution": "", "lecture": ""})
    section, text = _rationale_section(runs, runs["text"])
    assert "<table>" not in section and "no question of this split has a gold solution" in text


def test_compare_puts_baselines_beside_accuracy_in_every_format(cli, runs, tmp_path):
    """Chance and majority class beside the accuracies (issue 25): per column with --data, for the overall
    accuracy from a score object's own `baselines` without it; table, Markdown and JSON alike."""
    # Eight 4-choice items whose answers are A, B, C, D twice each: chance and majority class are both 25 %.
    res = cli("compare", f"vision={runs['vision']}", f"text={runs['text']}", "--data", runs["data"], "--json")
    assert res.exit_code == 0, res.output
    base = json.loads(res.stdout)["baselines"]
    assert base["chance"]["acc_average"] == 25.0 and base["majority"]["acc_average"] == 25.0
    assert "acc_natural" in base["chance"] and base["of"].startswith("test split of ")
    md = cli("compare", f"vision={runs['vision']}", "--data", runs["data"], "--markdown").stdout.splitlines()
    chance = next(line for line in md if line.startswith("| baseline: chance |"))
    assert chance.rstrip(" |").endswith("25.00") and any(line.startswith("| baseline: majority class |")
                                                         for line in md)
    assert any(line.startswith("Baseline rows: chance is a uniform guess") for line in md)
    text = cli("compare", f"vision={runs['vision']}", "--data", runs["data"]).stdout
    assert re.search(r"baseline: chance .*25\.00", text) and re.search(r"baseline: majority class .*25\.00", text)
    score = cli("score", runs["text"] / "preds-test.jsonl", "--data", runs["data"], "--json")
    (tmp_path / "text.json").write_text(score.stdout)
    res = cli("compare", f"text={tmp_path / 'text.json'}", "--json")  # no --data: the score object's own
    base = json.loads(res.stdout)["baselines"]
    assert base == {"chance": {"acc_average": 25.0}, "majority": {"acc_average": 25.0}, "of": "items of text"}
