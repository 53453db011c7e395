"""`mmcot ask` on tiny runs: where the time goes, before (a baseline commit) vs now (this checkout), in one run.

The runs are what the tests use: two t5-scratch runs (d_model 32, 1 layer, 2 heads; a rationale run QCM-E and an
answer run QCMG-A) fused with image features, built once (not timed) over a DATA_DIR of a few images, with a
feature store extracted from those images. Scenarios (`--scenarios`):

- patches-stored: the weight-free `patches` backbone, --image one of the store's images;
- vit-stored: `vit` (ViT-L/32, extract --random-init, both sides given --random-init-vision), --image one of the
  store's images: before, the ViT was built and run for it; now its stored row is read;
- vit-new: the same runs, an image the store does not hold: both sides build and run the ViT;
- questions: N questions (patches runs): before, N `mmcot ask` processes; now one `--questions FILE` process.

Each side runs from its own source tree (the baseline: `git archive REF` into a temporary folder; PYTHONPATH
points at it), every measurement in a fresh process, sides interleaved repeat after repeat, medians reported:

- cli_wall_s / cli_cpu_s: the whole `python -m mmcot_cli ask … --json` process (os.wait4 rusage);
- startup_s: importing `mmcot_cli.inference.ask` (torch, transformers: what any model command pays);
- ask_s: the `ask()` call after start-up, split into load_runs_s (both runs: weights, tokenizer), vision_build_s
  (building the vision encoder), generate_s (tokenize, encode + fuse, decode: both stages) and other_s (image
  decode, vision preprocessing and encoding, feature store).

    python benchmarks/bench_ask.py                           # baseline bca67ec, 2 repeats, all scenarios
    python benchmarks/bench_ask.py --before main --repeat 3 --scenarios patches-stored,questions

Prints one JSON object. On shared CPUs single timings are noisy: compare only figures of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = "bca67ec"  # main before `ask` read stored rows and took --questions
SCENARIOS = ("patches-stored", "vit-stored", "vit-new", "questions")
TINY = {"d_model": 32, "layers": 1, "heads": 2, "d_ff": 64}

# Runs inside the child: times the import, then one ask() call with its phases (functions wrapped where the
# side's code has them: inference.ask / inference.ask_images).
CHILD = r"""
import importlib, json, sys, time
t0 = time.perf_counter()
import mmcot_cli.inference.ask as ask_module
from mmcot_cli.inference.settings import AskConfig
startup = time.perf_counter() - t0
phases = {"load_runs_s": 0.0, "vision_build_s": 0.0, "generate_s": 0.0}
names = {"load_run": "load_runs_s", "build_vision_encoder": "vision_build_s", "generate_texts": "generate_s"}
for module_name in ("mmcot_cli.inference.ask", "mmcot_cli.inference.ask_images"):
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        continue
    for name, phase in names.items():
        real = module.__dict__.get(name)
        if real is None:
            continue
        def timed(*a, _real=real, _phase=phase, **kw):
            start = time.perf_counter()
            try:
                return _real(*a, **kw)
            finally:
                phases[_phase] += time.perf_counter() - start
        setattr(module, name, timed)
cfg = AskConfig(**json.loads(sys.argv[1]))
t1 = time.perf_counter()
result = ask_module.ask(cfg)
ask_s = time.perf_counter() - t1
phases["other_s"] = ask_s - sum(phases.values())
print(json.dumps({"startup_s": startup, "ask_s": ask_s, **phases, "answer": result["answer"]}))
"""


def build_world(root: Path, with_vit: bool) -> dict:
    """DATA_DIR (4 images), a patches store (+ a vit --random-init store), tiny runs on each; not timed."""
    import torch
    from PIL import Image

    from mmcot_cli.data.prompts import build_prompt
    from mmcot_cli.features.extract import ExtractConfig, extract
    from mmcot_cli.io import write_jsonl
    from mmcot_cli.model.text.runs import build_model, save_run_model
    from mmcot_cli.runs.meta import RunMeta

    colours = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (200, 200, 30)]
    rows = []
    for i, colour in enumerate(colours):
        path = root / "images" / str(i) / "image.png"
        path.parent.mkdir(parents=True)
        image = Image.new("RGB", (64, 64), (255, 255, 255))
        image.paste(colour, (8, 8, 56, 56))
        image.save(path)
        choices = ["red", "blue", "green", "yellow"]
        rows.append({"qid": str(i), "split": "train", "question": "What color is the square?", "hint": "",
                     "caption": "", "choices": choices, "answer": i, "lecture": "Colors.", "solution": "It is.",
                     "subject": "natural science", "grade": "grade2", "topic": "colors", "category": "c",
                     "skill": "s", "task": "closed choice", "image": "image.png", "image_paths": [str(path)]})
    write_jsonl(root / "data" / "train.jsonl", rows)
    new = root / "new.png"
    Image.new("RGB", (64, 64), (120, 60, 200)).save(new)
    texts = [s for r in rows for fmt in ("QCM-E", "QCMG-A") for s in build_prompt(r, fmt)]
    world = {"image": rows[0]["image_paths"][0], "new_image": str(new)}
    for backbone, shape in (("patches", [49, 192]), ("vit", [145, 1024]))[: 2 if with_vit else 1]:
        features = root / f"features-{backbone}"
        extract(ExtractConfig(backbone=backbone, out=str(features), data_dir=str(root / "data"), splits=("train",),
                              workers=0, dtype="float32", random_init=backbone == "vit"))
        for stage, fmt in (("rationale", "QCM-E"), ("answer", "QCMG-A")):
            torch.manual_seed(1)
            model, tok = build_model("t5-scratch", shape, train_texts=texts, text_options=TINY)
            meta = RunMeta(stage=stage, prompt_format=fmt, text_backbone="t5-scratch", vision_backbone=backbone,
                           feature_shape=shape, max_input_len=128, max_output_len=32, features_dir=str(features))
            run = root / f"{backbone}-{stage}"
            save_run_model(model, tok, run / "model", meta.model_meta())
            meta.save(run)
            world[f"{backbone}-{stage}"] = str(run)
    return world


def baseline_tree(ref: str, tmp: Path) -> Path:
    out = tmp / "before"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def _env(tree: Path) -> dict:
    return dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{tree / 'plugins'}", HF_HUB_OFFLINE="1")


def run_cli(tree: Path, argv: list[str]) -> tuple[float, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mmcot_cli", *argv], env=_env(tree), cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def run_child(tree: Path, cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], env=_env(tree), cwd=tree,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scenario_config(name: str, world: dict) -> dict:
    backbone = "patches" if name.startswith("patches") or name == "questions" else "vit"
    cfg = {"rationale_run": world[f"{backbone}-rationale"], "answer_run": world[f"{backbone}-answer"],
           "question": "What color is the square?", "choices": ["red", "blue", "green", "yellow"],
           "image": world["new_image"] if name == "vit-new" else world["image"], "device": "cpu"}
    if backbone == "vit":
        cfg["random_init_vision"] = True  # the baseline cannot ask a random-init run without it
    return cfg


def cli_args(cfg: dict) -> list[str]:
    argv = ["ask", "--rationale-run", cfg["rationale_run"], "--answer-run", cfg["answer_run"], "--question",
            cfg["question"], "--choices", "|".join(cfg["choices"]), "--image", cfg["image"], "--device", "cpu",
            "--json"]
    return argv + (["--random-init-vision"] if cfg.get("random_init_vision") else [])


def _median(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.median(values), 3) if values else None


def measure_questions(trees: dict, world: dict, n: int, repeat: int, tmp: Path) -> dict:
    base = scenario_config("questions", world)
    questions = tmp / "questions.jsonl"
    questions.write_text("".join(json.dumps({"qid": str(i), "question": f"What color is square {i}?",
                                             "choices": base["choices"], "image": base["image"]}) + "\n"
                                 for i in range(n)))
    walls: dict = {"before": [], "now": []}
    for _ in range(repeat):
        walls["before"].append(sum(run_cli(trees["before"], cli_args(base))[0] for _ in range(n)))
        argv = ["ask", "--rationale-run", base["rationale_run"], "--answer-run", base["answer_run"], "--questions",
                str(questions), "--device", "cpu", "--json"]
        wall, _, code = run_cli(trees["now"], argv)
        walls["now"].append(wall if code == 0 else f"exit {code}")
    before, now = _median(walls["before"]), _median(walls["now"])
    return {"questions": n, "before": {"how": f"{n} `mmcot ask` processes", "wall_s": before},
            "now": {"how": "one `mmcot ask --questions FILE` process", "wall_s": now},
            "speedup": round(before / now, 2) if before and now else None}


def measure(trees: dict, cfg: dict, repeat: int) -> dict:
    samples: dict = {side: [] for side in trees}
    for _ in range(repeat):
        for side, tree in trees.items():  # interleaved: both sides see the same machine load
            wall, cpu, code = run_cli(tree, cli_args(cfg))
            samples[side].append({"cli_wall_s": wall, "cli_cpu_s": cpu, "cli_exit": code, **run_child(tree, cfg)})
    out = {}
    for side, rows in samples.items():
        keys = ("cli_wall_s", "cli_cpu_s", "startup_s", "ask_s", "load_runs_s", "vision_build_s", "generate_s",
                "other_s")
        out[side] = {k: _median([r.get(k) for r in rows]) for k in keys}
        out[side]["cli_exit"] = sorted({r["cli_exit"] for r in rows})
        errors = sorted({r["error"] for r in rows if "error" in r})
        if errors:
            out[side]["errors"] = errors
    b, n = out["before"].get("ask_s"), out["now"].get("ask_s")
    out["ask_speedup"] = round(b / n, 2) if b and n else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BASELINE, help="git ref of the baseline (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--questions", type=int, default=8, help="questions in the `questions` scenario")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    import torch

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world = build_world(tmp / "world", with_vit=any(s.startswith("vit") for s in scenarios))
        trees = {"before": baseline_tree(args.before, tmp), "now": REPO}
        results = {}
        for name in scenarios:
            if name == "questions":
                results[name] = measure_questions(trees, world, args.questions, args.repeat, tmp)
            else:
                results[name] = measure(trees, scenario_config(name, world), args.repeat)
    print(json.dumps({"before": args.before, "now": "this checkout", "repeat": args.repeat, "cpus": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "goal": {"ask_s": 3.0},
                      "scenarios": results}, indent=2))


if __name__ == "__main__":
    main()
