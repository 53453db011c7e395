"""`mmcot generate` (a trained run → predictions per qid) and `mmcot ask` (one question through both stages)."""

from __future__ import annotations

import typer
from rich.table import Table

from mmcot_cli.cli.app import print_json, warn, write_stdout
from mmcot_cli.cli.options import settings_command
from mmcot_cli.inference.settings import AskConfig, GenerateConfig
from mmcot_cli.progress import err_console


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


@settings_command("ask")
def ask_command(
    cfg: AskConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Answer one question: generate the rationale with the stage-1 run, then the answer with the stage-2 run."""
    from mmcot_cli.inference.ask import ask

    result = ask(cfg)
    for message in result["warnings"]:
        warn(message)
    if json_out:
        print_json(result)
        return
    answer = result["answer_text"]
    letter = result["answer_letter"]
    choice = f"({letter}) {answer}" if answer is not None else "(no valid answer letter)"
    write_stdout(f"Rationale: {result['rationale']}\nAnswer:    {result['answer']}\nChoice:    {choice}\n")
