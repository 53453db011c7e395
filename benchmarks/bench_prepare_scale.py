"""`prepare` and `score` at scale: peak memory and seconds at 20k and 200k synthetic ScienceQA problems, the way
they used to run (re-created here as the baseline) beside the way they run now, in one run.

- prepare, before: problems.json loaded whole (one dict of every problem), every split's records built in lists,
  then written (what mmcot_cli.data.readers.scienceqa.prepare did up to this change).
  now: `mmcot_cli.data.readers.prepare_source`, the code `mmcot prepare` runs: problems.json streamed
  (mmcot_cli.data.json_stream), usable problems spooled to an anonymous file (readers/problem_index.py), each
  split written as it is read into the staging folder.
- score, before: the predictions file read whole as text, split into lines, one plain (dict-backed) object per
  prediction. now: `mmcot_cli.evaluation.score.score` (JSONL streamed line by line, slotted predictions).
  Both score the same predictions (every test qid, with a ~300-character rationale) against the same DATA_DIR,
  so the gold records of the split are held in both. Before also leaves the `rouge` package's garbage (each
  pair's LCS table, in a reference cycle) to the interpreter's own collector, as score did up to the change that
  collects it (original_metrics.collect_cycles, here replaced by a plain pass-through); `score_same_rationale`
  says whether both gave the same rationale metrics.

Synthetic problems have ScienceQA's fields and roughly its sizes (a ~1.2 kB lecture, a ~400-character solution,
2–4 choices); pid_splits.json has train/val/test (60/20/20, each list shuffled, so split order is not file order)
and trainval. Every measurement runs in a fresh process: `peak_rss_mb` is that process's peak resident set size
(ru_maxrss), `rss_at_start_mb` its size after imports, before the work; `seconds` the work's wall time.

    python benchmarks/bench_prepare_scale.py                      # 20k and 200k (~1 GB of temporary files)
    python benchmarks/bench_prepare_scale.py --sizes 2000,20000   # quicker

Prints one JSON object (--out FILE also writes it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("the", "light", "energy", "plant", "water", "force", "motion", "cell", "animal", "rock", "map", "state",
         "word", "sentence", "magnet", "heat", "sound", "weather", "trait", "matter", "solid", "liquid", "gas")
SUBJECTS = ("natural science", "social science", "language science")


def _text(rng: random.Random, chars: int) -> str:
    words, n = [], 0
    while n < chars:
        words.append(rng.choice(WORDS))
        n += len(words[-1]) + 1
    return " ".join(words).capitalize() + "."


def make_source(folder: Path, n: int, seed: int = 0) -> Path:
    """A ScienceQA folder of `n` synthetic problems (problems.json written as it is made)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    qids = [str(i) for i in range(1, n + 1)]
    order = qids[:]
    rng.shuffle(order)
    cut1, cut2 = int(0.6 * n), int(0.8 * n)
    splits = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    split_of = {q: s for s, qs in splits.items() for q in qs}
    splits["trainval"] = splits["train"] + splits["val"]
    with open(folder / "problems.json", "w", encoding="utf-8") as fh:
        fh.write("{")
        for i, qid in enumerate(qids):
            k = rng.randint(2, 4)
            problem = {"question": _text(rng, 80) + "?", "choices": [_text(rng, 12) for _ in range(k)],
                       "answer": rng.randrange(k), "hint": _text(rng, 120) if rng.random() < 0.5 else "",
                       "image": None, "task": "closed choice", "grade": f"grade{rng.randint(1, 12)}",
                       "subject": rng.choice(SUBJECTS), "topic": rng.choice(WORDS), "category": _text(rng, 20),
                       "skill": _text(rng, 30), "lecture": _text(rng, 1200), "solution": _text(rng, 400),
                       "split": split_of[qid]}
            fh.write(("," if i else "") + "\n" + json.dumps(qid) + ": " + json.dumps(problem))
        fh.write("\n}\n")
    (folder / "pid_splits.json").write_text(json.dumps(splits))
    return folder


def make_predictions(path: Path, data_dir: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(data_dir / "test.jsonl", encoding="utf-8") as rows, open(path, "w", encoding="utf-8") as out:
        for line in rows:
            record = json.loads(line)
            letter = "ABCD"[rng.randrange(len(record["choices"]))]
            out.write(json.dumps({"qid": record["qid"], "prediction": f"The answer is ({letter}).",
                                  "rationale": _text(rng, 300)}) + "\n")
    return path


# --------------------------------------------------------------------------- the baselines (the old way)

def prepare_before(source: Path, out: Path) -> None:
    """prepare as it ran before streaming: everything in memory, then written."""
    from mmcot_cli.data.readers.scienceqa import problem_errors, problem_to_record
    from mmcot_cli.data.records import DEFAULT_SPLITS, write_data_dir
    from mmcot_cli.io import read_json

    problems = {str(k): v for k, v in read_json(source / "problems.json", surrogates=True).items()}
    pid_splits = read_json(source / "pid_splits.json")
    records: dict[str, list[dict]] = {}
    for split in DEFAULT_SPLITS:
        rows = records.setdefault(split, [])
        for qid in pid_splits[split]:
            if problem_errors(qid, problems[qid]) is None:
                rows.append(problem_to_record(qid, problems[qid], split))
    out.mkdir(parents=True, exist_ok=True)
    write_data_dir(out, records, {"source": str(source), "splits": {s: {"count": len(r)} for s, r in
                                                                     records.items()}})


@dataclasses.dataclass
class _DictPrediction:  # Prediction as it was: a plain dataclass (a __dict__ per object)
    qid: str
    answer_index: int | None = None
    text: str | None = None
    letter: str | None = None
    rationale: str | None = None
    constrained: bool | None = None
    where: str = "<predictions>"

    @property
    def has_answer(self) -> bool:
        return self.answer_index is not None or self.text is not None or self.letter is not None


def score_before(predictions: Path, data_dir: Path) -> dict:
    """score as it read predictions before: the whole file as text, split into lines, each parsed."""
    from mmcot_cli.errors import DataError
    from mmcot_cli.evaluation import original_metrics
    from mmcot_cli.evaluation.predictions import BadEntries
    from mmcot_cli.evaluation.score import load_gold, score_against
    from mmcot_cli.io import jsonl_lines, loads, read_text

    original_metrics.collect_cycles = lambda items, every=0: items  # the rouge package's cycles left to Python
    records = load_gold(data_dir, "test")
    text = read_text(predictions, "predictions file")
    try:
        loads(text, str(predictions), surrogates=True)
    except DataError:
        pass
    preds = [_DictPrediction(qid=line.value["qid"], text=line.value["prediction"],
                             rationale=line.value["rationale"], where=line.where)
             for line in jsonl_lines(predictions, text=text)]
    return score_against(records, preds, "strict", 0, "solution", BadEntries(False, None), None, False)


def prepare_now(source: Path, out: Path) -> None:
    from mmcot_cli.data.readers import prepare_source

    prepare_source(source, out)


def score_now(predictions: Path, data_dir: Path) -> dict:
    from mmcot_cli.evaluation.score import ScoreConfig, score

    return score(ScoreConfig(predictions=predictions, data=data_dir, split="test"))


# --------------------------------------------------------------------------- one measurement, in its own process

def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(what: str, a: Path, b: Path, result_file: Path | None = None) -> None:
    import mmcot_cli.data.readers  # noqa: F401  (imports first: their memory is not the work's)
    import mmcot_cli.evaluation.score  # noqa: F401
    from mmcot_cli.progress import set_enabled

    set_enabled(False)
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    result = {"prepare_before": prepare_before, "prepare_now": prepare_now, "score_before": score_before,
              "score_now": score_now}[what](a, b)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if result_file is not None and isinstance(result, dict):
        rationale = {k: v for k, v in (result.get("rationale") or {}).items() if k != "headline"}
        result_file.write_text(json.dumps(rationale, sort_keys=True))
    print(json.dumps({"peak_rss_mb": round(peak, 1), "rss_at_start_mb": round(start_rss, 1),
                      "seconds": round(seconds, 2)}))


def measure(what: str, a: Path, b: Path, result_file: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"),
                                                        os.environ.get("PYTHONPATH", "")])}
    extra = [str(result_file)] if result_file is not None else []
    proc = subprocess.run([sys.executable, __file__, "--child", what, str(a), str(b), *extra], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(sizes: list[int], work: Path) -> dict:
    rows = {}
    for n in sizes:
        here = work / str(n)
        source = make_source(here / "src", n)
        row = {"problems": n, "problems_json_mb": round((source / "problems.json").stat().st_size / 2**20, 1)}
        for how in ("before", "now"):
            out = here / f"data-{how}"
            row[f"prepare_{how}"] = measure(f"prepare_{how}", source, out)
        same = all((here / "data-before" / f"{s}.jsonl").read_bytes() == (here / "data-now" / f"{s}.jsonl").read_bytes()
                   for s in ("train", "val", "test"))
        row["prepare_same_split_files"] = same
        preds = make_predictions(here / "preds.jsonl", here / "data-now")
        row["predictions_mb"] = round(preds.stat().st_size / 2**20, 1)
        for how in ("before", "now"):
            row[f"score_{how}"] = measure(f"score_{how}", preds, here / "data-now", here / f"rationale-{how}.json")
        row["score_same_rationale"] = ((here / "rationale-before.json").read_text()
                                       == (here / "rationale-now.json").read_text())
        rows[str(n)] = row
        shutil.rmtree(here, ignore_errors=True)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]) if len(sys.argv) > 5 else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated problem counts")
    parser.add_argument("--work", type=Path, default=None, help="folder for the temporary files (default: TMPDIR)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        rows = run(sizes, Path(work))
    result = {"benchmark": "prepare_scale", "python": platform.python_version(), "machine": platform.processor()
              or platform.machine(), "cpus": os.cpu_count(), "sizes": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
