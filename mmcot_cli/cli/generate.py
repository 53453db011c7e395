"""`mmcot generate` (a trained run → predictions per qid) and `mmcot ask` (one question through both stages)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mmcot_cli.cli.app import command, print_json, warn, write_stdout
from mmcot_cli.data.records import parse_splits
from mmcot_cli.inference.sampling import Sampling
from mmcot_cli.progress import err_console


@command("generate")
def generate_command(
    run: Path = typer.Option(..., "--run", help="RUN_DIR written by `mmcot train` (or its model/ directory)."),
    data_dir: Path = typer.Option(..., "--data", help="DATA_DIR written by `mmcot prepare`."),
    split: str = typer.Option("test", "--split", help="Split(s), comma-separated: e.g. train,val,test."),
    features: Optional[Path] = typer.Option(None, "--features", help="FEATURES_DIR from `mmcot extract` "
                                            "(default: the one the run was trained on)."),
    rationales: Optional[Path] = typer.Option(None, "--rationales", help="Answer-stage runs: stage-1 RUN_DIR "
                                              "(its preds-<split>.jsonl) or a predictions file; read by qid. "
                                              "Default: the rationales the run was trained with."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output JSONL (default RUN_DIR/preds-<split>.jsonl); "
                                      "with several splits use a '{split}' placeholder."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="Default: the run's max output length."),
    num_beams: int = typer.Option(1, "--num-beams", min=1, help="1 = greedy."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Only the first N records per split."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, help="Sample K texts per problem (teacher "
                                    "rationales); all kept under 'samples', 'prediction' is the first."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (default 0.7 "
                                                "when sampling; giving it turns sampling on)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling threshold."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling (same seed, same samples)."),
    constrain: bool = typer.Option(True, "--constrain/--no-constrain", help="Answer-giving runs: the answer "
                                   "sentence names one of the item's options (default; recorded per row)."),
    protocol: str = typer.Option("mmcot", "--protocol", help="mmcot (default) or original: free decoding as the "
                                 "original (no --constrain; score --protocol original adds its random A–E fallback). "
                                 "Recorded in every row."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Generate a prediction per qid with a trained run (batched, KV cache, prompts as the run was trained)."""
    from mmcot_cli.inference.generate import (  # torch, transformers: only when generating
        GenerateConfig,
        generate,
    )

    cfg = GenerateConfig(run=str(run), data_dir=str(data_dir), splits=parse_splits(split),
                         features=str(features) if features else None,
                         rationales=str(rationales) if rationales else None, out=out, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, num_beams=num_beams, device=device, limit=limit,
                         sampling=Sampling(num_samples, temperature, top_p, seed), constrain=constrain,
                         protocol=protocol)
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


@command("ask")
def ask_command(
    rationale_run: Path = typer.Option(..., "--rationale-run", help="Stage-1 RUN_DIR (rationale generation)."),
    answer_run: Path = typer.Option(..., "--answer-run", help="Stage-2 RUN_DIR (answer inference)."),
    question: str = typer.Option(..., "--question", help="The question text."),
    choices: str = typer.Option(..., "--choices", help="Options separated by '|', e.g. 'north|south'."),
    context: str = typer.Option("", "--context", help="Text context (the ScienceQA hint)."),
    image: Optional[Path] = typer.Option(None, "--image", help="An image file; encoded with each run's recorded "
                                         "vision backbone."),
    random_init_vision: bool = typer.Option(False, "--random-init-vision", help="Build the vision backbone with "
                                            "random weights (offline; the same seeded weights as `mmcot extract "
                                            "--random-init`)."),
    vision_weights: Optional[str] = typer.Option(None, "--vision-weights", help="Local path or hub id of the "
                                                 "vision weights (as `mmcot extract --weights`; default: the "
                                                 "run's recorded ones)."),
    alpha: Optional[str] = typer.Option(None, "--alpha", help="Transparent pixels of --image: 'original' (alpha "
                                        "dropped, colour under it kept, as the original's extraction) or 'white' "
                                        "[default: the policy each run's features were made with]."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1),
    num_beams: int = typer.Option(1, "--num-beams", min=1),
    device: str = typer.Option("auto", "--device"),
    constrain: bool = typer.Option(True, "--constrain/--no-constrain", help="The answer names one of --choices "
                                   "(default)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Answer one question: generate the rationale with the stage-1 run, then the answer with the stage-2 run."""
    from mmcot_cli.inference.ask import AskConfig, ask

    cfg = AskConfig(rationale_run=str(rationale_run), answer_run=str(answer_run), question=question,
                    choices=choices.split("|"), context=context, image=str(image) if image else None,
                    random_init_vision=random_init_vision, vision_weights=vision_weights,
                    max_new_tokens=max_new_tokens, num_beams=num_beams, device=device, alpha=alpha,
                    constrain=constrain)
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
