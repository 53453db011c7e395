"""`mmcot rationales import|filter`: teacher rationales → a rationale set for `mmcot train --rationale-source`;
`import --format mm-cot`: the original's positional stage-1 predictions → a rationale file for `--rationales`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.table import Table

from mmcot_cli.cli.app import app, print_json, warn
from mmcot_cli.cli.options import settings_command
from mmcot_cli.data.teacher import collect_rationales
from mmcot_cli.errors import UsageError
from mmcot_cli.progress import err_console
from mmcot_cli.runs.original_rationales import FORMAT as MM_COT
from mmcot_cli.runs.original_rationales import import_original_rationales
from mmcot_cli.settings import setting
from mmcot_cli.validate import check_split_name

rationales_app = typer.Typer(help="Teacher rationales: import them, keep those that reach the gold answer; "
                                  "import the original's stage-1 outputs (--format mm-cot).", no_args_is_help=True)
app.add_typer(rationales_app, name="rationales")

_SOURCE_HELP = ("Teacher JSONL {qid, rationale, answer?} (several lines per qid allowed), predictions from "
                "`mmcot generate --num-samples K`, or a rationale set.")
IMPORT_FORMATS = ("teacher", MM_COT)


def _report(summary: dict, json_out: bool) -> None:
    if json_out:
        print_json(summary)
        return
    title = f"Rationales {'kept' if summary['filter'] else 'imported'} → {summary['out']}"
    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    for label, key in (("problems in split", "problems"), ("problems with rationales", "problems_with_rationales"),
                       ("rationales", "rationales"), ("with an answer", "with_answer"),
                       ("reaching the gold answer", "correct"), ("written", "kept"),
                       ("problems keeping ≥ 1", "problems_kept"), ("unknown qids (ignored)", "unknown_qids"),
                       ("identical to an earlier one (dropped)", "duplicates")):
        table.add_row(label, str(summary[key]))
    if summary["strip_answer"]:
        table.add_row("answer statements stripped", str(summary["answers_stripped"]))
    table.add_row("only an answer statement (dropped)", str(summary["answer_only"]))
    err_console.print(table)


def _run(source: Path, data: Path, split: str, out: Path, only_correct: bool, skip_bad: bool, json_out: bool,
         strip_answer: bool):
    _report(collect_rationales(source, data, split, out, only_correct, skip_bad, warn, strip_answer), json_out)


_STRIP_HELP = ("Remove answer statements from the written rationales (a final 'The answer is (X).' / 'Therefore, "
               "the answer is X', a trailing '--> X', a leading 'The answer is (X). BECAUSE:'), after the answer was "
               "read from them: stage-1 targets then hold the reasoning only.")


def _report_original(summary: dict, json_out: bool) -> None:
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"The original's rationales ({summary['split']}) → {summary['out']}", show_header=False)
    for key in ("source", "sha256", "rationales", "empty", "order_checked", "label_mismatches"):
        table.add_row(key, str(summary[key]))
    if summary["hub"]:
        table.add_row("hub", "{repo}/{path} at {revision} = commit {commit}".format(**summary["hub"]))
    err_console.print(table)


_SPLIT_HELP = ("The split the rationales are for (mm-cot: the split the file was written for, its problems in DATA's "
               "order; eval = the original's --val_split, usually val; test = its --test_split).")
_FORMAT_HELP = ("teacher: rationales by qid → a rationale set (training targets); mm-cot: the original's positional "
                "stage-1 predictions {\"preds\": [...]} → stage-1 rationales by qid.")


@dataclass
class RationalesImport:
    """`mmcot rationales import`'s options (mmcot_cli.settings)."""

    source: str = setting(help=_SOURCE_HELP + " With --format mm-cot: the original's predictions_ans_eval.json / "
                          "predictions_ans_test.json (a local file, or a hub id org/name/<run folder>/"
                          "predictions_ans_test.json).", argument=True, metavar="SOURCE")
    data: Path = setting(help="DATA_DIR written by `mmcot prepare`.", metavar="DATA_DIR")
    out: Path = setting(help="Rationale set JSONL to write (mm-cot: a predictions JSONL keyed by qid, for "
                        "`generate/train --rationales`).", short="-o", metavar="FILE")
    split: str = setting("train", _SPLIT_HELP, metavar="SPLIT", check=check_split_name)
    fmt: str = setting("teacher", _FORMAT_HELP, flag="--format", choices=IMPORT_FORMATS)
    strip_answer: bool = setting(False, _STRIP_HELP)
    revision: str | None = setting(None, "mm-cot SOURCE given as a hub id (org/name/path/predictions_ans_test.json): "
                                   "branch, tag or commit (default main).", metavar="REV")
    skip_bad: bool = setting(False, "Warn about and skip bad lines instead of failing.")


@dataclass
class RationalesFilter:
    """`mmcot rationales filter`'s options (mmcot_cli.settings)."""

    source: Path = setting(help=_SOURCE_HELP, argument=True, metavar="SOURCE")
    data: Path = setting(help="DATA_DIR written by `mmcot prepare`.", metavar="DATA_DIR")
    out: Path = setting(help="Rationale set JSONL to write (only correct rationales).", short="-o", metavar="FILE")
    split: str = setting("train", "The split the rationales are for (it needs answers).", metavar="SPLIT",
                         check=check_split_name)
    strip_answer: bool = setting(False, _STRIP_HELP)
    skip_bad: bool = setting(False, "Warn about and skip bad lines instead of failing.")


_JSON = typer.Option(False, "--json", help="Print one JSON summary object.")


@settings_command("import", on=rationales_app)
def import_command(cfg: RationalesImport, json_out: bool = _JSON) -> None:
    """Write every rationale as a rationale set, with the answer it reaches and whether that is correct
    (identical rationales of a problem once); or, with --format mm-cot, map the original's stage-1 predictions to
    the qids of DATA's split (a count or order mismatch is refused) for `generate/train --rationales`."""
    if cfg.fmt == MM_COT:
        if cfg.strip_answer or cfg.skip_bad:
            raise UsageError("--strip-answer and --skip-bad apply to --format teacher (the original's file is "
                             "imported whole, verbatim)")
        _report_original(import_original_rationales(cfg.source, cfg.data, cfg.split, cfg.out, warn, cfg.revision),
                         json_out)
        return
    if cfg.revision is not None:
        raise UsageError("--revision applies to --format mm-cot hub ids")
    _run(Path(cfg.source), cfg.data, cfg.split, cfg.out, False, cfg.skip_bad, json_out, cfg.strip_answer)


@settings_command("filter", on=rationales_app)
def filter_command(cfg: RationalesFilter, json_out: bool = _JSON) -> None:
    """Keep the rationales whose answer (given, or parsed from the text) is the gold one (Fine-tune-CoT);
    identical rationales of a problem are kept once."""
    _run(cfg.source, cfg.data, cfg.split, cfg.out, True, cfg.skip_bad, json_out, cfg.strip_answer)
