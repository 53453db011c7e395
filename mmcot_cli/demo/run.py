"""`mmcot demo`: the paper's experiment, small and offline, through the real pipeline.

generate a synthetic benchmark (mmcot_cli.demo.synthetic) → prepare → extract (weight-free `patches`, or a random-init
backbone) → then twice, with image features (multimodal) and without (text-only): train the rationale stage
(from-scratch `t5-scratch` text backbone) → generate rationales for train/val/test → train the answer stage on
them (keyed by qid) → generate answers → score. Every step is the library function its `mmcot` command calls.

Sizes and schedules (SIZES) were chosen by measurement on 2 CPU cores; docs/DEMO.md has the numbers and why.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from mmcot_cli import progress
from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
from mmcot_cli.data.records import load_records
from mmcot_cli.demo.numerics import pin_demo_numerics, pipeline_threads
from mmcot_cli.demo.previous import kept_until_done
from mmcot_cli.demo.synthetic import REPORT_NOTE, generate_synthetic
from mmcot_cli.errors import (
    TERMINATING_SIGNALS,
    DataError,
    MMCoTError,
    Terminated,
    UnknownNameError,
    UsageError,
)
from mmcot_cli.evaluation.score import CATEGORIES, ScoreConfig, score, score_records
from mmcot_cli.io import os_reason, read_jsonl, write_json
from mmcot_cli.output_guard import check_output_dir, has_content
from mmcot_cli.outputs import claim_output_dir
from mmcot_cli.progress import ForwardedProgress
from mmcot_cli.registry.weights import require_backbone_weights
from mmcot_cli.reporting.report import ReportConfig, write_report
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.validate import check_protocol, check_seed, parse_device, positive_int

# mmcot_cli.training.loop / mmcot_cli.inference.generate (torch, transformers) are imported inside the functions that train and
# generate: `mmcot` imports this module at startup.

MODES = ("multimodal", "text_only")
DEMO_TEXT_MODELS = ("t5-scratch", "llama-scratch")
MARKER = ".mmcot-demo"  # written first: a folder holding it is a demo output that a rerun may replace
SUMMARY = "demo.json"  # written last, only by a completed run
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DemoSize:
    """How big the benchmark and how long the training: the knobs that trade time for accuracy."""
    n_problems: int
    rationale_epochs: int
    answer_epochs: int
    batch_size: int = 32
    lr: float = 1e-3  # from scratch: 1e-3 was stable, 2e-3 once collapsed (docs/DEMO.md)
    warmup_ratio: float = 0.05
    text_options: dict[str, Any] = field(default_factory=lambda: {"d_model": 128, "layers": 2, "heads": 4,
                                                                  "dropout": 0.0})
    generate_batch_size: int = 64
    rationale_max_len: int = 64  # the longest gold solution is 52 tokens with the t5-scratch tokenizer
    answer_max_len: int = 16  # "The answer is (B)." is 8
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)


SIZES: dict[str, DemoSize] = {
    "default": DemoSize(n_problems=2400, rationale_epochs=20, answer_epochs=10),
    "quick": DemoSize(n_problems=1000, rationale_epochs=16, answer_epochs=6),
    # Seconds, for the end-to-end test: same code path, a model too small and brief to learn much.
    "tiny": DemoSize(n_problems=60, rationale_epochs=1, answer_epochs=1, batch_size=16,
                     text_options={"d_model": 32, "layers": 1, "heads": 2, "dropout": 0.0},
                     rationale_max_len=12, answer_max_len=8,
                     split_fractions=(0.6, 0.2, 0.2)),
}
# (text model, size): its changes to SIZES (T5's as they are), measured: docs/DEMO.md "On a decoder-only LM"
DECODER_ONLY_SCHEDULES: dict[tuple[str, str], dict[str, Any]] = {("llama-scratch", "quick"): {"answer_epochs": 10}}


@dataclass
class DemoConfig:
    out: str = "demo-out"
    size: str = "default"  # a key of SIZES: default (< 10 min on 2 cores), quick (~1–2 min), tiny (tests)
    backbone: str = "patches"
    random_init: bool = True  # the demo is offline: backbones with weights are built with random weights
    seed: int = 0
    generate_only: bool = False  # write the synthetic benchmark into `out` and stop
    modes: tuple[str, ...] = MODES
    n_problems: int | None = None  # override the size's benchmark size
    device: str = "auto"  # extraction, training and generation: the GPU when there is one
    # Run the two pipelines side by side in two processes, each with half the CPU threads. Tiny models use
    # intra-op threads poorly, and on a busy machine two threads per process oversubscribe the cores
    # (docs/DEMO.md: 6.3 s vs 0.95 s per step). Their progress bars are drawn together by the parent.
    parallel: bool = True
    threads: int | None = None  # torch threads per pipeline; None = cpu_count // 2 in parallel, else unchanged
    text_model: str = "t5-scratch"  # or llama-scratch: the same benchmark on a decoder-only LM
    fusion: str = "gated"  # decoder-only: gated (at fusion_layer) or prefix; T5: gated on the encoder output
    fusion_layer: int | None = None
    protocol: str = "mmcot"  # train, generate and score under it (original: as the original code; TRAINING.md)
    # The same tables on every x86-64 CPU and thread count (model.precision.pin_cpu_numerics); False
    # (--native-kernels): this CPU's fastest kernels, whose digits depend on the CPU
    portable_kernels: bool = True

    def __post_init__(self) -> None:
        if self.text_model not in DEMO_TEXT_MODELS:  # the demo is offline: from-scratch backbones only
            raise UsageError(f"--text-model {self.text_model!r}: the demo trains {' or '.join(DEMO_TEXT_MODELS)}")
        check_protocol(self.protocol)
        if self.protocol == "original" and self.text_model != "t5-scratch":  # refused before anything is written
            raise UsageError(f"--protocol original trains T5 as the original code does; --text-model "
                             f"{self.text_model} (decoder-only) trains with --protocol mmcot")
        if self.fusion not in ("gated", "prefix"):
            raise UsageError(f"--fusion must be one of gated, prefix, got {self.fusion!r}")
        check_seed("--seed", self.seed)
        positive_int("--threads", self.threads, optional=True)
        positive_int("--problems", self.n_problems, optional=True)
        self.device = parse_device(self.device) if self.device != "cpu" else "cpu"

    @property
    def train_device(self) -> str:
        """`mmcot train`'s --device for self.device (training takes GPU 0 of those visible)."""
        return "cuda" if self.device.startswith("cuda") else "cpu" if self.device == "cpu" else "auto"

    def resolved_size(self) -> DemoSize:
        if self.size not in SIZES:
            raise UnknownNameError("demo size", self.size, list(SIZES))
        size = SIZES[self.size]
        if self.n_problems is not None:
            if self.n_problems < 3:  # checked here, before --out is touched (generate_synthetic checks it too)
                raise UsageError(f"--problems must be at least 3 (one per split), got {self.n_problems}")
            size = replace(size, n_problems=self.n_problems)
        size = replace(size, **DECODER_ONLY_SCHEDULES.get((self.text_model, self.size), {}))
        return size


Step = Callable[[str], None]


def check_out_dir(out: Path, generate_only: bool) -> None:
    """Refuse to clobber a folder that is not an earlier output of the same kind (nothing is changed here).

    The output guard first (for `demo` and `demo --ablation`): never a file, an input folder or inside one, or
    another command's output; a benchmark folder that --generate-only replaces is checked below."""
    if not (generate_only and (out / "problems.json").is_file()):
        check_output_dir(out, "demo")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if not has_content(out):
        return
    if generate_only:
        if (out / MARKER).is_file() or not (out / "problems.json").is_file():
            raise UsageError(f"{out}: exists and is not a benchmark folder; choose another --out")
        return  # generate_synthetic replaces a benchmark folder atomically
    if not (out / MARKER).is_file():
        raise UsageError(f"{out}: exists and is not an mmcot demo folder (no {MARKER}); choose another --out")


@contextlib.contextmanager
def demo_output(out: Path, generate_only: bool, marker: str, summary: str = SUMMARY) -> Iterator[None]:
    """Hold the output folder for the run (a second demo into it is refused): checked, locked, the demo marker
    (`marker`, its text) written first. An earlier demo output there is replaced only when the block succeeds
    (`summary`, written last, marks a finished run): an interrupted or failed rerun leaves it as it was."""
    check_out_dir(out, generate_only)
    benchmark_only = generate_only and (out / "problems.json").is_file()
    with claim_output_dir(out, "demo", guard=not benchmark_only):
        if generate_only:
            yield
            return
        with kept_until_done(out, summary, keep=(MARKER,)):
            try:
                (out / MARKER).write_text(marker)
            except OSError as e:
                raise DataError(f"{out}: cannot write ({os_reason(e)})") from None
            yield


def chance_accuracy(records: list[dict], test: Callable[[dict], bool]) -> float | None:
    """Expected accuracy (%) of guessing uniformly among each question's options."""
    chosen = [r for r in records if test(r)]
    return round(100.0 * sum(1 / len(r["choices"]) for r in chosen) / len(chosen), 2) if chosen else None


def _image_rationale_metrics(records: list[dict], preds_path: Path) -> dict | None:
    """Rationale metrics on the image questions only: where the text-only model must guess the visual fact."""
    img = [r for r in records if r["image"]]
    if not img:
        return None
    wanted = {str(r["qid"]) for r in img}
    rows = [row for row in read_jsonl(preds_path) if row["qid"] in wanted]
    return score_records(img, rows)["rationale"]


def text_options_for(text_model: str, size: DemoSize) -> dict[str, Any]:
    """The size's text options; a decoder-only llama-scratch gets T5's encoder + decoder layers in one stack."""
    options = dict(size.text_options)
    if text_model == "llama-scratch":
        options["layers"] = 2 * options.get("layers", 2)
    return options


def _run_mode(mode: str, cfg: DemoConfig, size: DemoSize, data_dir: Path, features: Path | None, runs: Path,
              step: Step) -> dict:
    from mmcot_cli.inference.generate import GenerateConfig, generate
    from mmcot_cli.training.loop import train

    run_r, run_a = runs / mode / "rationale", runs / mode / "answer"
    feats = str(features) if mode == "multimodal" else None
    common = dict(data_dir=str(data_dir), text_model=cfg.text_model, features=feats, lr=size.lr,
                  batch_size=size.batch_size, eval_batch_size=size.generate_batch_size,
                  warmup_ratio=size.warmup_ratio, seed=cfg.seed, eval_every=0, save_every=0, keep_checkpoints=1,
                  text_options=text_options_for(cfg.text_model, size), device=cfg.train_device,
                  fusion=cfg.fusion, fusion_layer=cfg.fusion_layer if feats else None, protocol=cfg.protocol,
                  # Same seed, same scores: deterministic kernels (on a CPU the portable ones, pinned by
                  # pin_demo_numerics; --native-kernels leaves the CPU's own), and fp32 on a GPU too, so its numbers
                  # stay comparable with the CPU ones (tiny models gain no speed in bf16).
                  deterministic=cfg.portable_kernels or cfg.device.startswith("cuda"), precision="fp32")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    step(f"{mode}: train the rationale stage (QCM → solution)")
    train(TrainConfig(stage="rationale", out_dir=str(run_r), epochs=size.rationale_epochs,
                      max_output_len=size.rationale_max_len, **common))
    timings["train_rationale"] = time.perf_counter() - t

    t = time.perf_counter()
    step(f"{mode}: generate rationales for {', '.join(SPLITS)}")
    generate(GenerateConfig(run=str(run_r), data_dir=str(data_dir), splits=SPLITS,
                            batch_size=size.generate_batch_size, device=cfg.device, protocol=cfg.protocol))
    timings["generate_rationales"] = time.perf_counter() - t

    t = time.perf_counter()
    step(f"{mode}: train the answer stage on the generated rationales (QCMG → answer)")
    train(TrainConfig(stage="answer", out_dir=str(run_a), epochs=size.answer_epochs, rationales=str(run_r),
                      train_on="generated", max_output_len=size.answer_max_len, **common))
    timings["train_answer"] = time.perf_counter() - t

    t = time.perf_counter()
    step(f"{mode}: generate answers for test")
    generate(GenerateConfig(run=str(run_a), data_dir=str(data_dir), splits=("test",),
                            batch_size=size.generate_batch_size, device=cfg.device, protocol=cfg.protocol))
    timings["generate_answers"] = time.perf_counter() - t

    t = time.perf_counter()
    answer_preds, rationale_preds = run_a / "preds-test.jsonl", run_r / "preds-test.jsonl"
    answers = score(ScoreConfig(predictions=answer_preds, data=data_dir, split="test", protocol=cfg.protocol))
    rationales = score(ScoreConfig(predictions=rationale_preds, data=data_dir, split="test", protocol=cfg.protocol))
    # One object with `mmcot score --json` keys: the answer run's accuracies, the rationale run's metrics.
    result = {**answers, "rationale": rationales["rationale"], "rationale_predictions": str(rationale_preds)}
    image_rationales = _image_rationale_metrics(load_records(data_dir, "test"), rationale_preds)
    timings["score"] = time.perf_counter() - t
    return {"score": result,
            "rationale_image_questions": image_rationales,
            "runs": {"rationale": str(run_r), "answer": str(run_a)},
            "seconds": {k: round(v, 2) for k, v in timings.items()}}


def _print_step(message: str) -> None:
    progress.log(f"[bold cyan]▶[/] {message}")


@contextlib.contextmanager
def ending_children_on_error() -> Iterator[None]:
    """On any exception inside (a failed pipeline, Ctrl-C, SIGTERM), end the worker processes started inside the
    block before the pool waits for them: left alone, a worker would train on for minutes with no one to report
    to. Children started before (the progress queue's manager) are left to their own shutdown."""
    before = set(multiprocessing.active_children())
    try:
        yield
    except BaseException:
        for child in set(multiprocessing.active_children()) - before:
            child.terminate()
        raise


@contextlib.contextmanager
def worker_ends_cleanly() -> Iterator[None]:
    """In a pool worker running a job: SIGTERM (the parent ending it) unwinds as in the main process — temporary
    files removed, locks released — and the worker exits 143. Idle, it ends at once (the default)."""
    previous = {name: signal.signal(getattr(signal, name), Terminated.on_signal) for name in TERMINATING_SIGNALS}
    try:
        yield
    except Terminated:
        os._exit(Terminated.exit_code)
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _mode_worker(mode: str, cfg: DemoConfig, size: DemoSize, data_dir: Path, features: Path | None, runs: Path,
                 threads: int, queue) -> dict:
    """One pipeline in a child process with its own thread budget. Its progress bars and stage lines go to
    the parent through `queue` (two processes drawing on one terminal would garble it); queue None = silent.
    Library errors come back as data (their classes do not all pickle)."""
    import torch

    torch.set_num_threads(threads)
    if queue is None:
        progress.set_enabled(False)
        step = lambda _m: None  # noqa: E731
    else:
        progress.forward_to(queue, mode)
        step = _print_step
    with worker_ends_cleanly():
        try:
            return _run_mode(mode, cfg, size, data_dir, features, runs, step)
        except MMCoTError as e:
            return {"error": str(e), "exit_code": e.exit_code}


def _run_modes_parallel(cfg: DemoConfig, size: DemoSize, data_dir: Path, features: Path | None, runs: Path,
                        step: Step, quiet: bool) -> dict[str, dict]:

    threads = pipeline_threads(cfg)
    step(f"{' and '.join(cfg.modes)} pipelines run side by side ({threads} thread(s) each)")
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch/OpenMP state
    with contextlib.ExitStack() as stack:
        queue = None
        if not quiet:
            queue = stack.enter_context(ctx.Manager()).Queue()
            stack.enter_context(ForwardedProgress(queue))
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=len(cfg.modes), mp_context=ctx))
        stack.enter_context(ending_children_on_error())
        futures = {mode: pool.submit(_mode_worker, mode, cfg, size, data_dir, features, runs, threads, queue)
                   for mode in cfg.modes}
        results = {mode: f.result() for mode, f in futures.items()}
    for mode, result in results.items():
        if "error" in result:
            error = MMCoTError(f"{mode} pipeline: {result['error']}")
            error.exit_code = result["exit_code"]
            raise error
    return results


def run_demo(cfg: DemoConfig, step: Step | None = None) -> dict:
    """Run the demo; return {multimodal, text_only (score objects), chance, paths, seconds, …}.

    `step` is called with a one-line description before each stage (the CLI prints it)."""
    quiet = step is None  # no stage lines from the worker processes either
    step = step or (lambda _msg: None)
    size = cfg.resolved_size()
    unknown = [m for m in cfg.modes if m not in MODES]
    if unknown or not cfg.modes:
        raise UnknownNameError("demo mode", (unknown or ["(none)"])[0], list(MODES))
    out = Path(cfg.out)
    if not cfg.generate_only and "multimodal" in cfg.modes:
        # an unknown name, or pretrained weights that cannot be had, fail before anything is written
        require_backbone_weights(cfg.backbone, random_init=cfg.random_init)
    with demo_output(out, cfg.generate_only, "mmcot demo output; `mmcot demo --out` here replaces it\n"):
        return _run_demo_held(cfg, step, quiet, size, out)


def _run_demo_held(cfg: DemoConfig, step: Step, quiet: bool, size: DemoSize, out: Path) -> dict:
    start = time.perf_counter()
    seconds: dict[str, Any] = {}
    cpu_numerics = (pin_demo_numerics(cfg.train_device, cfg.portable_kernels, pipeline_threads(cfg))
                    if not cfg.generate_only else None)

    bench = out if cfg.generate_only else out / "benchmark"
    step(f"generate the synthetic benchmark ({size.n_problems} problems) in {bench}")
    t = time.perf_counter()
    summary = generate_synthetic(bench, n_problems=size.n_problems, seed=cfg.seed,
                                 split_fractions=size.split_fractions)
    seconds["generate_benchmark"] = round(time.perf_counter() - t, 2)
    if cfg.generate_only:
        return {"benchmark": summary, "seconds": {"total": round(time.perf_counter() - start, 2), **seconds}}

    data_dir = out / "data"
    step(f"prepare {data_dir}")
    t = time.perf_counter()
    prepare(PrepareConfig(source=bench, out=data_dir, splits=SPLITS))
    seconds["prepare"] = round(time.perf_counter() - t, 2)

    features = _extract_features(cfg, data_dir, out, step, seconds) if "multimodal" in cfg.modes else None

    t = time.perf_counter()
    if cfg.parallel and len(cfg.modes) > 1:
        results = _run_modes_parallel(cfg, size, data_dir, features, out / "runs", step, quiet)
    else:
        results = {}
        threads = pipeline_threads(cfg)
        for mode in cfg.modes:
            if threads:
                import torch

                torch.set_num_threads(threads)
            results[mode] = _run_mode(mode, cfg, size, data_dir, features, out / "runs", step)
    for mode in cfg.modes:
        seconds[mode] = results[mode]["seconds"]
    seconds["pipelines"] = round(time.perf_counter() - t, 2)

    test_records = load_records(data_dir, "test")
    chance = {key: chance_accuracy(test_records, test) for key, _, test in CATEGORIES}
    seconds["total"] = round(time.perf_counter() - start, 2)
    summary_out = {
        **{mode: results[mode]["score"] for mode in cfg.modes},
        "chance": chance,
        "rationale_image_questions": {mode: results[mode]["rationale_image_questions"] for mode in cfg.modes},
        "config": {**asdict(cfg), "size_settings": asdict(size)},
        "benchmark": summary,
        "paths": {"out": str(out.resolve()), "benchmark": str(bench.resolve()), "data": str(data_dir.resolve()),
                  "features": str(features.resolve()) if features else None,
                  "runs": {mode: results[mode]["runs"] for mode in cfg.modes}},
        "seconds": seconds,
        "cpu_count": os.cpu_count(),
        "cpu_numerics": cpu_numerics,
    }
    summary_out["paths"]["report"] = _write_report(cfg, results, data_dir, out)
    write_json(out / SUMMARY, summary_out)
    return summary_out


def _extract_features(cfg: DemoConfig, data_dir: Path, out: Path, step: Step, seconds: dict) -> Path:
    """The multimodal pipeline's feature store (OUT/features/<backbone>), timed into `seconds`."""
    import torch

    from mmcot_cli.features.extract import (  # numpy/torch: only when extracting
        ExtractConfig,
        extract,
    )

    features = out / "features" / cfg.backbone
    step(f"extract {cfg.backbone} features into {features}")
    t = time.perf_counter()
    threads, fixed = torch.get_num_threads(), pipeline_threads(cfg)
    if fixed:  # the features too are computed at the pipelines' fixed thread count
        torch.set_num_threads(fixed)
    try:
        extract(ExtractConfig(backbone=cfg.backbone, out=str(features), data_dir=str(data_dir), splits=SPLITS,
                              random_init=cfg.random_init, device=cfg.device, batch_size=64, workers=0,
                              dtype="float32"))
    finally:
        torch.set_num_threads(threads)
    seconds["extract"] = round(time.perf_counter() - t, 2)
    return features


def _write_report(cfg: DemoConfig, results: dict, data_dir: Path, out: Path) -> str:
    """report.html beside demo.json (`mmcot report` on the answer runs; the gallery compares the two modes)."""

    labels = {"multimodal": "multimodal", "text_only": "text-only"}
    inputs = [f"{labels[m]}={results[m]['runs']['answer']}" for m in cfg.modes]
    write_report(ReportConfig(inputs=inputs, data=data_dir, out=out / "report.html", seed=cfg.seed,
                              title="mmcot demo", data_note=REPORT_NOTE, protocol=cfg.protocol))
    return str((out / "report.html").resolve())
