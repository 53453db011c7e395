"""`mmcot generate` (a trained run → predictions per qid) and `mmcot ask` (one question through both stages)."""

from __future__ import annotations

import typer
from rich.table import Table

from mmcot_cli.cli.app import print_json, stdout_is_utf8, warn, write_stdout
from mmcot_cli.cli.options import settings_command
from mmcot_cli.inference.settings import AskConfig, GenerateConfig
from mmcot_cli.io import dumps
from mmcot_cli.progress import err_console, make_console


@settings_command("generate")
def generate_command(
    cfg: GenerateConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Generate a prediction per qid with a trained run (batched, KV cache, prompts as the run was trained)."""
    from mmcot_cli.inference.generate import generate  # torch, transformers: only when generating

    summary = generate(cfg)
    for message in summary["warnings"]:
        warn(message)
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"{summary['stage']} predictions ({summary['prompt_format']}) from {summary['run']}")
    for col in ("split", "records", "answers found", "samples/s", "written to"):
        table.add_column(col, justify="left" if col in ("split", "written to") else "right")
    for name, s in summary["splits"].items():
        table.add_row(name, str(s["count"]), str(s.get("answer_found", "-")), str(s["samples_per_s"]), s["out"])
    err_console.print(table)


def _choice(result: dict) -> str:
    answer, letter = result["answer_text"], result["answer_letter"]
    return f"({letter}) {answer}" if answer is not None else "(no valid answer letter)"


def print_answers_table(results: list[dict], source: str, console=None) -> None:
    """One row per question of --questions: qid, question, the chosen option and the rationale."""
    table = Table(title=f"Answers to {source} ({len(results)} questions)")
    for col in ("qid", "question", "choice", "rationale"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r["qid"], r["question"], _choice(r), r["rationale"])
    (console or make_console()).print(table)


@settings_command("ask")
def ask_command(
    cfg: AskConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (with --questions: one JSON line "
                                  "per question, in file order)."),
) -> None:
    """Answer questions: generate the rationale with the stage-1 run, then the answer with the stage-2 run."""
    from mmcot_cli.inference.ask import ask, ask_questions

    if cfg.questions is None:
        result = ask(cfg)
        for message in result["warnings"]:
            warn(message)
        if json_out:
            print_json(result)
            return
        write_stdout(f"Rationale: {result['rationale']}\nAnswer:    {result['answer']}\nChoice:    "
                     f"{_choice(result)}\n")
        return
    results = ask_questions(cfg)  # everything answered before the first line is written
    for message in dict.fromkeys(m for r in results for m in r["warnings"]):
        warn(message)
    if json_out:
        write_stdout("".join(dumps(r, ascii_only=not stdout_is_utf8()) + "\n" for r in results))
        return
    print_answers_table(results, cfg.questions)
