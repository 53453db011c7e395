"""The report page: one HTML string, every picture a data: URI, no script, nothing fetched from the network.
All text from runs and data goes through `esc` (html.escape)."""

from __future__ import annotations

import datetime
import html

from mmcot_cli._version import __version__
from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS
from mmcot_cli.evaluation.score import CATEGORIES
from mmcot_cli.reporting import charts

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#1d1d1f;padding:0 16px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}.muted{color:#666;font-size:12px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px}
th{background:#f4f4f6;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.pub td{color:#555;background:#fafafa;font-style:italic}tr.pub td:first-child::after{content:" (published)";
font-size:11px;color:#888}
img.chart{max-width:100%;border:1px solid #eee;margin:6px 0}
.item{display:grid;grid-template-columns:200px 1fr;gap:14px;border:1px solid #ddd;border-radius:6px;
padding:10px;margin:10px 0}
.item img{width:192px;border:1px solid #eee}.noimg{width:180px;min-height:60px;padding:6px;background:#f4f4f6;
color:#888;font-size:12px;overflow-wrap:anywhere;text-align:center}
.rats{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:8px;margin-top:6px}
.rat{background:#f8f8fa;border-radius:4px;padding:6px 8px;font-size:13px}.rat b{display:block;font-size:12px}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}ol.opts{margin:4px 0;padding-left:22px}
li.gold{font-weight:600}
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _letter(index) -> str:
    return "none" if index is None else f"({chr(ord('A') + index)})"


def _score_table(report: dict) -> str:

    head = "".join(f"<th>{esc(label)}</th>" for _, label, _ in CATEGORIES)
    rows = []
    for run in report["runs"]:
        if run.has_answers:
            cells = "".join(f'<td class="n">{_num(run.score.get(key))}</td>' for key, _, _ in CATEGORIES)
            rows.append(f"<tr><td>{esc(run.label)}</td>{cells}</tr>")
    for row in report["published"]:
        cells = "".join(f'<td class="n">{_num(row.get(key))}</td>' for key, _, _ in CATEGORIES)
        rows.append(f'<tr class="pub"><td title="{esc(row["source"])}">{esc(row["name"])}</td>{cells}</tr>')
    counts = report["runs"][0].score.get("counts") if report["runs"][0].has_answers else None
    sizes = ""
    if counts:
        sizes = "".join(f'<td class="n">{counts[key]["total"]}</td>' for key, _, _ in CATEGORIES)
        sizes = f'<tr><td class="muted">items in this split</td>{sizes}</tr>'
    return f"<table><tr><th>run</th>{head}</tr>{''.join(rows)}{sizes}</table>"


def _topic_table(report: dict) -> str:
    runs = [r for r in report["runs"] if r.has_answers]
    if not runs:
        return ""
    counts = runs[0].score["counts"]
    topics = [k for k in counts if k.startswith("acc_") and counts[k]["total"] and k[4:] not in _CATEGORY_KEYS]
    head = "".join(f"<th>{esc(r.label)}</th>" for r in runs)
    body = "".join(f"<tr><td>{esc(k[4:])}</td><td class=\"n\">{counts[k]['total']}</td>"
                   + "".join(f'<td class="n">{_num(r.score.get(k))}</td>' for r in runs) + "</tr>" for k in topics)
    return f"<table><tr><th>topic</th><th>items</th>{head}</tr>{body}</table>"


_CATEGORY_KEYS = {"natural", "social", "language", "has_text", "has_image", "no_context", "grade_1_6",
                  "grade_7_12", "average"}


def _rationale_table(report: dict) -> str:

    runs = [r for r in report["runs"] if r.rationale_by_category]
    if not runs:
        return "<p class=\"muted\">No run has generated rationales.</p>"
    head = "".join(f"<th>{esc(label)}</th>" for _, label, _ in CATEGORIES)
    rows = []
    for run in runs:
        for metric in RATIONALE_METRICS:
            cells = "".join(f'<td class="n">{_num(run.rationale_by_category[key].get(metric.key))}</td>'
                            for key, _, _ in CATEGORIES)
            rows.append(f"<tr><td>{esc(run.label)}</td><td>{esc(metric.label)}</td>{cells}</tr>")
    sources = "".join(f"<li>{esc(r.label)}: {esc(r.rationale_source)}</li>" for r in runs)
    return (f"<table><tr><th>run</th><th>metric</th>{head}</tr>{''.join(rows)}</table>"
            f"<p class=\"muted\">Against the gold solution (×100). Rationales from:</p><ul class=\"muted\">"
            f"{sources}</ul>")


def _charts(report: dict) -> str:

    parts = []
    runs = [r for r in report["runs"] if r.has_answers]
    if runs:
        uri = charts.category_bars([label for _, label, _ in CATEGORIES],
                                   {r.label: [r.score.get(key) for key, _, _ in CATEGORIES] for r in runs})
        parts.append(f'<h3>Accuracy by category</h3><img class="chart" alt="accuracy by category" src="{uri}">')
    for run in report["runs"]:
        uri = charts.training_curves(run.curves) if run.curves else None
        if uri:
            parts.append(f'<h3>Training curves: {esc(run.label)}</h3>'
                         f'<img class="chart" alt="training curves of {esc(run.label)}" src="{uri}">')
    missing = [r.label for r in report["runs"] if not r.curves]
    if missing:
        parts.append(f'<p class="muted">No metrics.jsonl for: {esc(", ".join(missing))}.</p>')
    return "".join(parts)


def _side_html(side: dict, gold_index: int) -> str:
    verdict = '<span class="ok">right</span>' if side["correct"] else '<span class="bad">wrong</span>'
    rouge = f" · ROUGE-L {_num(side['rouge_l'])}" if side["rouge_l"] is not None else ""
    text = "(no rationale)" if side["rationale"] is None else side["rationale"] or "(empty)"
    return (f'<div class="rat"><b>{esc(side["label"])}: answer {_letter(side["pred_index"])} {verdict}'
            f'{rouge}</b>{esc(text)}</div>')


def _gallery(report: dict) -> str:
    g = report["gallery"]
    if g["base"] is None:
        return '<p class="muted">No run with answers: nothing to sample.</p>'
    if not g["items"]:
        return f'<p>{esc(g["base"])} made no wrong answers on this split.</p>'
    intro = (f"<p>{len(g['items'])} of the {g['wrong']} wrong answers of <b>{esc(g['base'])}</b>, sampled with seed "
             f"{g['seed']}.")
    if g["corrected"]:
        c = g["corrected"]
        pct = f" ({100.0 * c['k'] / c['n']:.1f}%)" if c["n"] else ""
        intro += f" <b>Corrected by vision ({esc(g['other'])}): {c['k']} of {c['n']}{pct}.</b>"
    cards = []
    for it in g["items"]:
        picture = (f'<img alt="image of qid {esc(it["qid"])}" src="{it["image"]}">' if it["image"]
                   else f'<div class="noimg">{esc(it["no_image"])}</div>')
        opts = "".join(f'<li{" class=gold" if i == it["answer"] else ""}>{esc(c)}</li>'
                       for i, c in enumerate(it["choices"]))
        hint = f'<div class="muted">Context: {esc(it["hint"])}</div>' if it["hint"] else ""
        sides = _side_html(it["base"], it["answer"]) + (_side_html(it["other"], it["answer"]) if it["other"] else "")
        gold = f'<div class="rat"><b>gold solution</b>{esc(it["gold_rationale"] or "(none in the data)")}</div>'
        cards.append(f'<div class="item"><div>{picture}<div class="muted">qid {esc(it["qid"])}</div></div><div>'
                     f'<b>{esc(it["question"])}</b>{hint}<ol class="opts" type="A">{opts}</ol>'
                     f'<div class="rats">{sides}{gold}</div></div></div>')
    return intro + "</p>" + "".join(cards)


def _runs_list(report: dict) -> str:
    items = []
    for run in report["runs"]:
        kind = {True: "image features", False: "text-only", None: "unknown (no run_config.json)"}[run.vision]
        fmt = run.prompt_format or "?"
        items.append(f"<li><b>{esc(run.label)}</b>: {esc(run.preds)} · {esc(fmt)} · {kind}</li>")
    return f"<ul>{''.join(items)}</ul>"


def render(report: dict) -> str:
    cfg = report["config"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<h1>{esc(cfg.title)}</h1><p class=\"muted\">Split {esc(cfg.split)} of {esc(cfg.data)} · "
            f"{len(report['records'])} items · mmcot {esc(__version__)} · {now}</p>{_runs_list(report)}"
            f"<h2>Accuracy by category (%)</h2>{_score_table(report)}"
            f"<p class=\"muted\">Published rows are ScienceQA test results quoted from their sources (hover a name), "
            f"not computed here; compare them only with runs on the real ScienceQA test split.</p>"
            f"<h2>Charts</h2>{_charts(report)}"
            f"<h2>Rationale quality by category</h2>{_rationale_table(report)}"
            f"<h2>Error gallery</h2>{_gallery(report)}"
            f"<h2>Accuracy by topic (%)</h2>{_topic_table(report)}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(cfg.title)}</title><style>{_CSS}</style>'
            f"</head><body>{body}</body></html>\n")
