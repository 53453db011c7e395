"""`mmcot demo --ablation`: the paper's ablations (its §3 tables) as a recipe on the synthetic benchmark.

Six settings, each through the real pipeline (`train` → `generate` → `score`, as the demo):
- one stage, text only: QCM→A (`QCM-A`), QCM→RA (`QCM-EA`: rationale, then "The answer is (X)."), QCM→AR
  (`QCM-AL`: the answer, then "BECAUSE: rationale"; the reference's AL carries the solution, its names are
  swapped). R is the solution, the same rationale the demo's stage 1 learns (QCM-E); the paper's v1 rationale
  also held the lecture (QCM-LEA / QCM-ALE, which `--prompt-format` accepts too).
- two stages (QCM-E rationale → QCMG-A answer trained on the generated rationales): text only; with captions
  (generic ones written here, see CAPTIONS: the benchmark withholds captions because a caption stating the
  visual fact would let the text-only model cheat; a captioner's usual "a traffic light" does not); with vision
  features (`patches`).
Settings run side by side in worker processes; then the comparison table (`mmcot compare`) and the report
(`mmcot report`) are written beside them.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mmcot_cli import progress
from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
from mmcot_cli.demo.numerics import pin_demo_numerics
from mmcot_cli.demo.run import (
    SPLITS,
    DemoConfig,
    demo_output,
    ending_children_on_error,
    worker_ends_cleanly,
)
from mmcot_cli.demo.synthetic import REPORT_NOTE, generate_synthetic
from mmcot_cli.errors import MMCoTError, UnknownNameError
from mmcot_cli.io import atomic_open, read_json, write_json
from mmcot_cli.progress import ForwardedProgress
from mmcot_cli.reporting.compare import CompareConfig, compare, to_markdown
from mmcot_cli.reporting.published import PAPER_ABLATIONS
from mmcot_cli.reporting.report import ReportConfig, write_report
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.validate import check_seed, non_negative_int, positive_int

SUMMARY = "ablation.json"


@dataclass(frozen=True)
class Setting:
    name: str
    title: str  # the paper's name for it
    prompt_format: str  # one stage: the format; two stages: the answer stage's
    two_stage: bool = False
    captions: bool = False
    vision: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("one_stage_qcm_a", "One-stage QCM→A", "QCM-A"),
    Setting("one_stage_qcm_ra", "One-stage QCM→RA", "QCM-EA"),
    Setting("one_stage_qcm_ar", "One-stage QCM→AR", "QCM-AL"),
    Setting("two_stage_text", "Two-stage, text only", "QCMG-A", two_stage=True),
    Setting("two_stage_captions", "Two-stage + captions", "QCMG-A", two_stage=True, captions=True),
    Setting("two_stage_vision", "Two-stage + vision features", "QCMG-A", two_stage=True, vision=True),
)

# A captioner names the object but, at this size, not the fact (which pole faces which, which lamp is lit).
CAPTIONS = (("magnet", "Two bar magnets lie side by side."), ("traffic light", "A traffic light on a white "
            "background."), ("litmus", "A strip of litmus paper."), ("shape", "A large shape on a white background."))


@dataclass
class AblationConfig:
    out: str = "ablation-out"
    size: str = "default"  # a key of mmcot_cli.demo.run.SIZES
    seed: int = 0
    workers: int | None = None  # settings trained at once; None = cpu_count (at most 6)
    threads: int = 1  # torch threads per worker
    gallery: int = 50
    n_problems: int | None = None  # override the size's benchmark size
    settings: tuple[str, ...] = tuple(s.name for s in SETTINGS)

    def __post_init__(self) -> None:  # numbers: exit 2 naming the option, before anything is written

        check_seed("--seed", self.seed)
        positive_int("--problems", self.n_problems, optional=True)
        positive_int("--threads", self.threads)
        positive_int("workers", self.workers, optional=True)
        non_negative_int("gallery", self.gallery)


def generic_captions(problems: dict) -> dict[str, str]:
    """qid → a caption naming the pictured object, for every problem with an image."""
    out = {}
    for qid, problem in problems.items():
        if problem.get("image"):
            q = problem["question"].lower()
            out[qid] = next((text for key, text in CAPTIONS if key in q), "A picture.")
    return out


def _common(data_dir: Path, size, seed: int, features: Path | None, use_caption: bool) -> dict:
    return dict(data_dir=str(data_dir), text_model="t5-scratch", features=str(features) if features else None,
                use_caption=use_caption, lr=size.lr, batch_size=size.batch_size,
                eval_batch_size=size.generate_batch_size, warmup_ratio=size.warmup_ratio, seed=seed,
                eval_every="epoch", save_every=0, keep_checkpoints=1, text_options=dict(size.text_options),
                deterministic=True, precision="fp32")  # as the demo: identical reruns (training.runtime)


def run_setting(setting: Setting, size, seed: int, data: dict[str, Path], features: Path | None,
                run_root: Path) -> dict:
    """Train and evaluate one setting; returns {run (answer run dir), rationale_run, seconds}."""
    from mmcot_cli.inference.generate import GenerateConfig, generate
    from mmcot_cli.training.loop import train

    start = time.perf_counter()
    data_dir = data["captions" if setting.captions else "plain"]
    common = _common(data_dir, size, seed, features if setting.vision else None, setting.captions)
    root = run_root / setting.name
    gen = dict(data_dir=str(data_dir), batch_size=size.generate_batch_size, device="cpu")
    rationale_run = None
    if setting.two_stage:
        rationale_run = root / "rationale"
        train(TrainConfig(stage="rationale", out_dir=str(rationale_run), epochs=size.rationale_epochs,
                          max_output_len=size.rationale_max_len, **common))
        generate(GenerateConfig(run=str(rationale_run), splits=("train", "val", "test"), **gen))
        answer_run = root / "answer"
        train(TrainConfig(stage="answer", out_dir=str(answer_run), epochs=size.answer_epochs,
                          rationales=str(rationale_run), train_on="generated", max_output_len=size.answer_max_len,
                          **common))
    else:
        answer_run = root / "answer"
        out_len = size.answer_max_len + (size.rationale_max_len if setting.prompt_format != "QCM-A" else 0)
        train(TrainConfig(stage="answer", out_dir=str(answer_run), prompt_format=setting.prompt_format,
                          epochs=size.rationale_epochs, max_output_len=out_len, **common))
    generate(GenerateConfig(run=str(answer_run), splits=("test",), **gen))
    return {"run": str(answer_run), "rationale_run": str(rationale_run) if rationale_run else None,
            "seconds": round(time.perf_counter() - start, 2)}


def _worker(setting: Setting, size, seed: int, data, features, run_root, threads: int, queue) -> dict:
    import torch


    torch.set_num_threads(threads)
    if queue is None:
        progress.set_enabled(False)
    else:
        progress.forward_to(queue, setting.name)
        progress.log(f"[bold cyan]▶[/] {setting.title} ({setting.name})")
    with worker_ends_cleanly():
        try:
            return run_setting(setting, size, seed, data, features, run_root)
        except MMCoTError as e:  # library errors come back as data (not every class pickles)
            return {"error": f"{setting.name}: {e}", "exit_code": e.exit_code}


def _run_all(cfg: AblationConfig, chosen: list[Setting], size, data, features, run_root: Path, quiet: bool) -> dict:
    import contextlib
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor


    workers = cfg.workers or min(len(chosen), os.cpu_count() or 1)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch/OpenMP state
    # Longest first (two-stage settings), so the last job to start is a short one.
    order = sorted(chosen, key=lambda s: (not s.two_stage, s.prompt_format == "QCM-A"))
    with contextlib.ExitStack() as stack:
        queue = None
        if not quiet:
            queue = stack.enter_context(ctx.Manager()).Queue()
            stack.enter_context(ForwardedProgress(queue))
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=ctx))
        stack.enter_context(ending_children_on_error())
        futures = {s.name: pool.submit(_worker, s, size, cfg.seed, data, features, run_root, cfg.threads, queue)
                   for s in order}
        results = {name: f.result() for name, f in futures.items()}
    for result in results.values():
        if "error" in result:
            error = MMCoTError(result["error"])
            error.exit_code = result["exit_code"]
            raise error
    return results


def _prepare_inputs(cfg: AblationConfig, chosen: list[Setting], size, out: Path, step) -> tuple[dict, Path | None]:
    """Benchmark → prepared data (and a captioned copy) → vision features, as far as the settings need them."""

    bench = out / "benchmark"
    step(f"generate the synthetic benchmark ({size.n_problems} problems) in {bench}")
    generate_synthetic(bench, n_problems=size.n_problems, seed=cfg.seed, split_fractions=size.split_fractions)
    data = {"plain": out / "data"}
    step(f"prepare {data['plain']}")
    prepare(PrepareConfig(source=bench, out=data["plain"], splits=SPLITS))
    if any(s.captions for s in chosen):
        captions = out / "captions.json"
        write_json(captions, {"model": "mmcot ablation: generic object captions (mmcot_cli.demo.ablation.CAPTIONS)",
                              "captions": generic_captions(read_json(bench / "problems.json"))})
        data["captions"] = out / "data-captions"
        step(f"prepare {data['captions']} with the generic captions in {captions}")
        prepare(PrepareConfig(source=bench, out=data["captions"], splits=SPLITS, captions=captions))
    features = None
    if any(s.vision for s in chosen):
        from mmcot_cli.features.extract import ExtractConfig, extract

        features = out / "features" / "patches"
        step(f"extract patches features into {features}")
        extract(ExtractConfig(backbone="patches", out=str(features), data_dir=str(data["plain"]), splits=SPLITS,
                              device="cpu", batch_size=64, workers=0, dtype="float32"))
    return data, features


def _paper_table(chosen: list[Setting], table: dict) -> str:
    """Markdown: the paper's accuracy / ROUGE-L next to this run's, per setting."""

    def fmt(v):
        return "—" if v is None else f"{v:.2f}"

    lines = ["| setting | format | paper: accuracy | here: accuracy (Avg) | paper: rationale ROUGE-L | "
             "here: rationale ROUGE-L |", "|---|---|---|---|---|---|"]
    for setting, row in zip(chosen, table["rows"]):
        paper = PAPER_ABLATIONS.get(setting.name, {})
        fmt_name = f"QCM-E → {setting.prompt_format}" if setting.two_stage else setting.prompt_format
        lines.append(f"| {setting.title} | {fmt_name} | {fmt(paper.get('accuracy'))} | "
                     f"{fmt(row['values']['acc_average'])} | {fmt(paper.get('rouge_l'))} | "
                     f"{fmt(row['values']['rationale_rouge_l'])} |")
    return "\n".join(lines) + "\n"


def run_ablation(cfg: AblationConfig, step=None) -> dict:
    """Run the chosen settings and write ablation.json, ablation.md (tables) and report.html into cfg.out."""

    quiet = step is None
    step = step or (lambda _m: None)
    size = DemoConfig(size=cfg.size, n_problems=cfg.n_problems).resolved_size()
    known = {s.name: s for s in SETTINGS}
    unknown = [n for n in cfg.settings if n not in known]
    if unknown or not cfg.settings:

        raise UnknownNameError("ablation setting", (unknown or ["(none)"])[0], list(known))
    chosen = [s for s in SETTINGS if s.name in cfg.settings]
    out = Path(cfg.out)
    with demo_output(out, False, "mmcot ablation output; `mmcot demo --ablation --out` here replaces it\n", SUMMARY):
        return _run_ablation_held(cfg, chosen, size, out, step, quiet)


def _run_ablation_held(cfg: AblationConfig, chosen: list[Setting], size, out: Path, step, quiet: bool) -> dict:
    start = time.perf_counter()
    # the settings train on the CPU (run_setting): pinned here, before extraction and the workers
    cpu_numerics = pin_demo_numerics("cpu", threads=cfg.threads)
    data, features = _prepare_inputs(cfg, chosen, size, out, step)
    step(f"{len(chosen)} settings, {cfg.workers or min(len(chosen), os.cpu_count() or 1)} at a time")
    results = _run_all(cfg, chosen, size, data, features, out / "runs", quiet)

    step("compare the settings and write the report")
    inputs = [f"{s.title}={results[s.name]['run']}" for s in chosen]
    table = compare(CompareConfig(inputs=inputs, data=data["plain"]))
    with atomic_open(out / "ablation.md") as fh:
        fh.write(f"## Ablations on the synthetic benchmark ({cfg.size} size, seed {cfg.seed})\n\n"
                 f"{to_markdown(table)}\n{_paper_table(chosen, table)}")
    report = write_report(ReportConfig(inputs=inputs, data=data["plain"], out=out / "report.html",
                                       gallery=cfg.gallery, seed=cfg.seed, title="mmcot ablations",
                                       data_note=REPORT_NOTE))
    summary = {
        "settings": {s.name: {"title": s.title, "prompt_format": s.prompt_format, "two_stage": s.two_stage,
                              "captions": s.captions, "vision": s.vision, **results[s.name],
                              "values": row["values"]} for s, row in zip(chosen, table["rows"])},
        "table": table,
        "paths": {"out": str(out.resolve()), "markdown": str((out / "ablation.md").resolve()),
                  "report": str((out / "report.html").resolve())},
        "corrected_by_vision": report["corrected_by_vision"],
        "config": {**asdict(cfg), "size_settings": asdict(size)},
        "seconds": {"total": round(time.perf_counter() - start, 2)},
        "cpu_count": os.cpu_count(),
        "cpu_numerics": cpu_numerics,
    }
    write_json(out / SUMMARY, summary)
    return summary
