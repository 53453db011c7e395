"""The report page: one HTML string, every picture a data: URI, no script, nothing fetched from the network.
All text from runs and data goes through `esc` (html.escape)."""

from __future__ import annotations

import datetime
import html

from mmcot_cli._version import __version__
from mmcot_cli.evaluation.kinds import (
    BREAKDOWN_TITLES,
    HEADLINE_TITLES,
    breakdown,
    headline_baselines,
    headline_columns,
    headline_sizes,
    headline_values,
)
from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS, rationale_reference
from mmcot_cli.reporting import charts
from mmcot_cli.reporting.published import PUBLISHED

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#1d1d1f;padding:0 16px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}.muted{color:#666;font-size:12px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px}
th{background:#f4f4f6;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.base td{color:#666;font-size:12px}tr.pub td{color:#555;background:#fafafa;font-style:italic}tr.pub td:first-child::after{content:" (published)";
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
.note{background:#fff4d6;border:1px solid #e5c66b;border-radius:4px;padding:6px 10px;font-weight:600}
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _letter(index) -> str:
    return "none" if index is None else f"({chr(ord('A') + index)})"


def _text(value) -> str:
    """Escaped text with its line breaks kept: real ones and the literal "\\n" prompts and rationales carry."""
    return esc(value).replace("\\n", "<br>").replace("\n", "<br>")


def _answered(report: dict) -> list:
    return [r for r in report["runs"] if r.has_answers]


def _columns(report: dict) -> list:
    """The headline columns that have items in this split (an empty category is named once, in `_empty_note`)."""
    answered = _answered(report)
    sizes = headline_sizes(answered[0].score) if answered else {}
    return [c for c in headline_columns(report["kind"]) if sizes.get(c.key) != 0]


def _categories(report: dict) -> list:
    """The rationale table's categories that hold at least one item of this split."""
    return [c for c in report["categories"] if any(c[2](r) for r in report["records"])]


def _empty_note(report: dict) -> str | None:
    """One line naming the categories with no items in this split, whose columns and bars are left out."""
    kept = {c.key for c in _columns(report)} | {key for key, _, _ in _categories(report)}
    labels = [c.label for c in headline_columns(report["kind"]) if c.key not in kept]
    labels += [label for key, label, _ in report["categories"] if key not in kept and label not in labels]
    if not labels:
        return None
    return (f"no items: {', '.join(esc(label) for label in labels)} — this split has no questions in "
            f"{'that category' if len(labels) == 1 else 'these categories'}, so "
            f"{'its column is' if len(labels) == 1 else 'their columns are'} left out of the tables and charts.")


def _score_table(report: dict) -> str:
    columns = _columns(report)
    head = "".join(f"<th>{esc(c.label)}</th>" for c in columns)
    rows = []
    for run in _answered(report):
        values = headline_values(run.score)
        cells = "".join(f'<td class="n">{_num(values[c.key])}</td>' for c in columns)
        rows.append(f"<tr><td>{esc(run.label)}</td>{cells}</tr>")
    published = report["published"]
    for row in published.rows if published else ():
        cells = "".join(f'<td class="n">{_num(row.get(c.key))}</td>' for c in columns)
        rows.append(f'<tr class="pub"><td title="{esc(row["source"])}">{esc(row["name"])}</td>{cells}</tr>')
    rows.extend(_baseline_rows(report, columns))
    answered = _answered(report)
    sizes = ""
    if answered:
        counts = headline_sizes(answered[0].score)
        sizes = "".join(f'<td class="n">{esc(counts.get(c.key))}</td>' for c in columns)
        sizes = f'<tr><td class="muted">items in this split</td>{sizes}</tr>'
    return f"<table><tr><th>run</th>{head}</tr>{''.join(rows)}{sizes}</table>"


def _baseline_rows(report: dict, columns) -> list[str]:
    """Chance and majority-class accuracy per column, on the same items: what an accuracy must beat."""
    base = headline_baselines(report["kind"], report["records"])
    rows = []
    for name, key, title in (("chance", "chance", "a uniform guess among each item's options"),
                             ("majority class", "majority", "always the letter most often right in that column")):
        cells = "".join(f'<td class="n">{_num((base.get(c.key) or {}).get(key))}</td>' for c in columns)
        rows.append(f'<tr class="base"><td title="{esc(title)}">baseline: {esc(name)}</td>{cells}</tr>')
    return rows


def _collapse_notes(report: dict) -> list[str]:
    """One note per run whose every answer is the same letter (evaluation.baselines.collapsed)."""
    notes = []
    for run in _answered(report):
        collapse = run.score.get("collapsed")
        if collapse:
            notes.append(f"{esc(run.label)}: every answer is ({esc(collapse['letter'])}) — all {collapse['count']} "
                         f"predictions chose the same option; compare its accuracy with the majority-class row.")
    return notes


def _score_notes(report: dict) -> str:
    """What the accuracy table's numbers are, and why published rows are (not) beside them."""
    notes = [n for n in (_empty_note(report),) if n] + _collapse_notes(report)
    original = [esc(r.label) for r in _answered(report) if r.protocol == "original"]
    if original:
        notes.append(f"Scored under protocol original ({', '.join(original)}): an answer that names no option gets "
                     f"the original's random letter among A–E (`score --fallback reference`), as `mmcot score "
                     f"--protocol original` scores it.")
    notes.append("baseline rows: chance is a uniform guess among each item's own options; majority class always "
                 "answers the letter most often right among the column's items.")
    if report["kind"] == "aokvqa":
        notes.append("MC: the chosen option is the correct choice, over all questions. DA: the chosen option's "
                     "text against the ten direct answers, min(1, matches / 3), over the questions not marked "
                     "difficult_direct_answer (allenai/aokvqa eval_predictions.py). MC (non-difficult) and DA (all): "
                     "the other difficult-question filtering (an earlier version of the script).")
    published, name = report["published"], report["format"].published_rows
    if published:
        notes.append(f"Published rows are {esc(published.benchmark)} {esc(published.split)} results quoted from "
                     f"their sources (hover a name), not computed here.")
    elif name in PUBLISHED:
        table = PUBLISHED[name]
        why = report.get("published_left_out")
        notes.append(f"Published {esc(table.benchmark)} results are shown only for its real {esc(table.split)} "
                     f"split ({table.num_items:,} questions with its metadata); this split is not it"
                     f"{': ' + esc(why) if why else ''}, so they are left out.")
    return "".join(f'<p class="muted">{n}</p>' for n in notes)


def _breakdown_table(report: dict) -> str:
    runs = _answered(report)
    if not runs:
        return '<p class="muted">No run has answers.</p>'
    rows = breakdown(runs[0].score)  # every run is scored on the same data
    if not rows:
        return '<p class="muted">Nothing to break down: the data has no topics or groups.</p>'
    per_run = [{c.key: value for c, _, value in breakdown(r.score)} for r in runs]
    head = "".join(f"<th>{esc(r.label)}</th>" for r in runs)
    body = "".join(f'<tr><td>{esc(c.label)}</td><td class="n">{esc(total)}</td>'
                   + "".join(f'<td class="n">{_num(values.get(c.key))}</td>' for values in per_run) + "</tr>"
                   for c, total, _ in rows)
    name = "topic" if report["kind"] == "scienceqa" else "group"
    return f"<table><tr><th>{name}</th><th>items</th>{head}</tr>{body}</table>"


# The original's ROUGE-L per category (reporting.report.rationale_by_category): key → row label
ORIGINAL_ROWS = (("original_rouge_l", "ROUGE-L (original get_scores)"),
                 ("original_validation_rouge_l", "ROUGE-L (original validation)"))


def _rationale_rows(run, categories) -> list[tuple[str, str]]:
    """(metric label, cells) of one run, its protocol's headline first and marked: mmcot's ROUGE-L on normalised
    text (`--protocol mmcot`) or the original's get_scores ROUGE-L on the raw text (`--protocol original`)."""
    by_category = run.rationale_by_category
    rows = []
    for metric in RATIONALE_METRICS:
        if metric.key not in by_category[categories[0][0]]:
            continue  # an optional metric that was not asked for
        rows.append((f"{metric.label} (mmcot, normalised)", metric.key))
    rows += [(label, key) for key, label in ORIGINAL_ROWS]
    headline = "original_rouge_l" if run.protocol == "original" else "rouge_l"
    rows.sort(key=lambda row: row[1] != headline)  # stable: the others keep their order
    out = []
    for label, key in rows:
        cells = "".join(f'<td class="n">{_num(by_category[c].get(key))}</td>' for c, _, _ in categories)
        if key == headline:
            label = f"<b>{esc(label)}</b> · headline (protocol {esc(run.protocol)})"
        else:
            label = esc(label)
        out.append((label, cells))
    return out


def _no_rationales(run) -> str:
    """Why a run has no rationale to score (reporting.report.run_rationales found none)."""
    if run.meta is None:
        return "a predictions file whose rows carry no rationale field"
    if run.meta.rationales_source:
        return f"its stage-1 run {esc(run.meta.rationales_source)} could not be read (see the warning)"
    return (f"its format {esc(run.meta.prompt_format)} writes no rationale and its run_config.json names no "
            f"stage-1 run")


def _unscored(run, records: list[dict]) -> str | None:
    """Why none of a run's rationales is scored on this split (None: some are)."""
    qids = {str(r["qid"]) for r in records}
    if not qids & set(run.rationales):
        return (f"none of its {len(run.rationales)} rationales ({esc(run.rationale_source)}) is for a question of "
                f"this split, so none is scored")
    return None


def _rationale_notes(runs, records: list[dict]) -> list[str]:
    """Lines under the table: gold without a solution, runs whose every rationale is empty."""
    notes = []
    missing = sum(1 for r in records if not rationale_reference(r))
    if missing:
        notes.append(f"{missing} of the {len(records)} questions have no gold solution: mmcot's metrics are over "
                     f"the other {len(records) - missing}.")
    qids = {str(r["qid"]) for r in records}
    for run in runs:
        if all(not text.strip() for q, text in run.rationales.items() if q in qids):
            notes.append(f"{esc(run.label)}: every rationale is empty (mmcot's metrics score 0; the original's "
                         f"get_scores skips empty predictions: —).")
    return notes


def _rationale_table(report: dict) -> str:
    """The rationale metrics per category, or one line saying why there are none to show."""
    records = report["records"]
    absent = [f"{esc(r.label)} ({_no_rationales(r)})" for r in report["runs"] if not r.rationale_by_category]
    lines = [f"No rationales from {'; '.join(absent)}."] if absent else []
    runs = [r for r in report["runs"] if r.rationale_by_category]
    if runs and not any(rationale_reference(r) for r in records):
        lines.insert(0, f"Not shown: no question of this split has a gold solution (every solution field is "
                        f"empty), so the rationales of {esc(', '.join(r.label for r in runs))} have nothing to be "
                        f"compared with.")
        runs = []
    for run in list(runs):
        why = _unscored(run, records)
        if why:
            lines.append(f"{esc(run.label)}: {why}.")
            runs.remove(run)
    if not runs:
        return "".join(f'<p class="muted">{line}</p>' for line in lines or ["No run has generated rationales."])
    categories = _categories(report)
    head = "".join(f"<th>{esc(label)}</th>" for _, label, _ in categories)
    rows = [f"<tr><td>{esc(run.label)}</td><td>{label}</td>{cells}</tr>"
            for run in runs for label, cells in _rationale_rows(run, categories)]
    sources = "".join(f"<li>{esc(r.label)}: {esc(r.rationale_source)}</li>" for r in runs)
    notes = "".join(f'<p class="muted">{line}</p>' for line in _rationale_notes(runs, records) + lines)
    return (f"<table><tr><th>run</th><th>metric</th>{head}</tr>{''.join(rows)}</table>"
            f"<p class=\"muted\">Against the gold solution (×100). mmcot, normalised: mmcot's metrics on normalised "
            f"text (line-break escapes and the \"Solution:\" prefix removed). original: the raw text against the "
            f"original's target \"Solution: …\", get_scores with the rouge package, validation with rouge-score. "
            f"Each run's first row is its protocol's headline (`--protocol mmcot`: mmcot's ROUGE-L; "
            f"`--protocol original`: the original's get_scores ROUGE-L). Rationales from:</p><ul class=\"muted\">"
            f"{sources}</ul>{notes}")


def _charts(report: dict) -> str:

    parts = []
    runs = _answered(report)
    if runs:
        columns = _columns(report)
        base = headline_baselines(report["kind"], report["records"])
        uri = charts.category_bars([c.label for c in columns],
                                   {r.label: [headline_values(r.score)[c.key] for c in columns] for r in runs},
                                   chance=[(base.get(c.key) or {}).get("chance") for c in columns])
        title = HEADLINE_TITLES[report["kind"]]
        parts.append(f'<h3>{esc(title)}</h3><img class="chart" alt="{esc(title)}" src="{uri}">')
    for run in report["runs"]:
        uri = charts.training_curves(run.curves, chance=run.val_chance) if run.curves else None
        if uri:
            parts.append(f'<h3>Training curves: {esc(run.label)}</h3>'
                         f'<img class="chart" alt="training curves of {esc(run.label)}" src="{uri}">')
    files = [r.label for r in report["runs"] if not r.curves and r.path == r.preds and r.meta is None]
    missing = [r.label for r in report["runs"] if not r.curves and r.label not in files]
    if files:
        parts.append(f'<p class="muted">No training curves for {esc(", ".join(files))}: a predictions file, not a '
                     f'run folder with a metrics.jsonl.</p>')
    if missing:
        parts.append(f'<p class="muted">No metrics.jsonl for: {esc(", ".join(missing))}.</p>')
    return "".join(parts)


def _side_html(side: dict, gold_index: int) -> str:
    verdict = '<span class="ok">right</span>' if side["correct"] else '<span class="bad">wrong</span>'
    rouge = f" · ROUGE-L {_num(side['rouge_l'])}" if side["rouge_l"] is not None else ""
    text = "(no rationale)" if side["rationale"] is None else side["rationale"] or "(empty)"
    return (f'<div class="rat"><b>{esc(side["label"])}: answer {_letter(side["pred_index"])} {verdict}'
            f'{rouge}</b>{_text(text)}</div>')


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
        hint = f'<div class="muted">Context: {_text(it["hint"])}</div>' if it["hint"] else ""
        sides = _side_html(it["base"], it["answer"]) + (_side_html(it["other"], it["answer"]) if it["other"] else "")
        gold = f'<div class="rat"><b>gold solution</b>{_text(it["gold_rationale"] or "(none in the data)")}</div>'
        cards.append(f'<div class="item"><div>{picture}<div class="muted">qid {esc(it["qid"])}</div></div><div>'
                     f'<b>{esc(it["question"])}</b>{hint}<ol class="opts" type="A">{opts}</ol>'
                     f'<div class="rats">{sides}{gold}</div></div></div>')
    return intro + "</p>" + "".join(cards)


def _runs_list(report: dict) -> str:
    items = []
    for run in report["runs"]:
        if run.meta is None:  # a bare predictions file: say what it is, not "?"
            what = (f"predictions file {esc(run.preds.name)} ({esc(run.preds)}) · no run_config.json beside it, so "
                    f"its prompt format and image features are unknown")
        else:
            kind = "image features" if run.vision else "text-only"
            what = f"{esc(run.preds)} · {esc(run.prompt_format)} · {kind}"
        decoded = ""
        if run.has_answers:  # how the answers were decoded, where generate recorded it (per row)
            n, total = run.score.get("num_constrained", 0), run.score.get("num_predictions", 0)
            decoded = f" · answers decoded within options: {n}/{total}" if n else ""
        backbone = f" · {esc(run.decoder_only)}" if run.decoder_only else ""
        protocol = f" · protocol {esc(run.protocol)}"
        items.append(f"<li><b>{esc(run.label)}</b>: {what}{backbone}{decoded}{protocol}</li>")
    return f"<ul>{''.join(items)}</ul>"


def render(report: dict) -> str:
    cfg, kind = report["config"], report["kind"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    note = f'<p class="note">{esc(cfg.data_note)}</p>' if cfg.data_note else ""
    body = (f"<h1>{esc(cfg.title)}</h1><p class=\"muted\">Split {esc(cfg.split)} of {esc(cfg.data)} "
            f"({esc(report['format'].name)} data) · {len(report['records'])} items · mmcot {esc(__version__)} · "
            f"{now}</p>{note}{_runs_list(report)}"
            f"<h2>{esc(HEADLINE_TITLES[kind])}</h2>{_score_table(report)}{_score_notes(report)}"
            f"<h2>{esc(BREAKDOWN_TITLES[kind])}</h2>{_breakdown_table(report)}"
            f"<h2>Charts</h2>{_charts(report)}"
            f"<h2>Rationale quality by category</h2>{_rationale_table(report)}"
            f"<h2>Error gallery</h2>{_gallery(report)}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(cfg.title)}</title><style>{_CSS}</style>'
            f"</head><body>{body}</body></html>\n")
