"""Every step explains itself (issue 25): outside a terminal, progress is one plain line at a steady interval;
`train` prints its loss every check and ends with the final loss; targets that teach nothing are warned about
before training; tables in a pipe are not cut at 80 columns."""

import io

from rich.console import Console
from test_train import TINY_ARGS, make_records, write_split

from mmcot_cli import progress
from mmcot_cli.training.log_lines import degenerate_targets


def test_log_progress_prints_start_steady_lines_and_the_end(monkeypatch):
    buf = io.StringIO()
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    bar = progress.LogProgress(Console(file=buf, width=300), interval=30)
    with bar:
        task = bar.add_task("train answer", total=100, loss="-", sps="-")
        for step in range(1, 101):
            clock[0] = step * 2.0  # 2 s a step: a line every 15 steps (30 s)
            bar.update(task, advance=1, loss=f"{1 / step:.4f}", sps="8.0")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 6 + 1  # 30 s apart (steps 15 … 90), done
    assert lines[0].startswith("train answer: 15/100 (15%)  loss 0.0667  8.0 samples/s  elapsed 0:30  ETA 2:50")
    assert lines[-1].startswith("train answer: 100/100 (100%)") and "ETA" not in lines[-1]
    short = io.StringIO()  # shorter than the interval: nothing; a failure: no extra line
    with progress.LogProgress(Console(file=short), interval=30) as bar:
        task = bar.add_task("check", total=3)
        bar.update(task, advance=3)
    assert short.getvalue() == ""


def test_make_progress_outside_a_terminal_is_a_log_progress_unless_quiet(monkeypatch):
    # Independent of what earlier tests left: progress on, no worker forwarding, stderr no terminal.
    monkeypatch.setattr(progress, "_enabled", True)
    monkeypatch.setattr(progress, "_forward", None)
    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())
    assert isinstance(progress.make_progress(), progress.LogProgress)  # pytest's stderr is no terminal
    progress.set_enabled(False)
    try:
        assert not isinstance(progress.make_progress(), progress.LogProgress)
    finally:
        progress.set_enabled(True)


def test_degenerate_targets():
    assert "empty apart from its labels" in degenerate_targets([("q", "Solution: "), ("r", "Solution:")], "train")
    assert "same text" in degenerate_targets([("q", "The answer is (B)."), ("r", "The answer is (B).")], "val")
    assert degenerate_targets([("q", "The answer is (A)."), ("r", "The answer is (B).")], "train") is None


def test_train_prints_losses_final_loss_and_warns_on_empty_targets(cli, tmp_path):
    data = tmp_path / "data"
    rows = [{**r, "lecture": "", "solution": ""} for r in make_records("train", 8, 1)]
    write_split(data, "train", rows)
    write_split(data, "val", [{**r, "lecture": "", "solution": ""} for r in make_records("val", 4, 101)])
    res = cli("train", "--stage", "rationale", "--data", data, "--text-model", "t5-scratch", "--out",
              tmp_path / "run", "--epochs", "2", "--batch-size", "4", "--max-output-len", "8", "--eval-every", "0",
              *TINY_ARGS)
    assert res.exit_code == 0, res.output
    err = res.stderr
    assert "warning: every train target (8) is empty apart from its labels" in err
    assert "train rationale: epoch 1  step 2  train loss" in err and "train rationale: epoch 2  step 4" in err
    assert "train rationale: step 4/4  loss" in err
    assert "final train loss" in err


def test_tables_in_a_pipe_are_not_cut_at_80_columns(cli):
    res = cli("backbones")
    assert res.exit_code == 0
    assert "flan-alpaca-large" in res.stdout and "declare-lab/flan-alpaca-large" in res.stdout
    assert "…" not in res.stdout


def test_train_in_a_log_file_prints_steady_progress_lines_and_the_final_loss(tmp_path):
    """`python -m mmcot_cli train … 2> log` as a job runs it: no terminal anywhere, so the progress is plain lines
    (done/total, loss, samples/s, elapsed, ETA) at the interval, the loss every 25 steps, and the summary ends
    with the final loss, its table uncut."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "data"
    write_split(data, "train", make_records("train", 48, 1))
    write_split(data, "val", make_records("val", 4, 101))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "MMCOT_PROGRESS_SECONDS": "0.02", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins"), os.environ.get("PYTHONPATH", "")])}
    env.pop("COLUMNS", None)
    log, out = tmp_path / "train.log", tmp_path / "summary.txt"
    with open(log, "w") as err_file, open(out, "w") as out_file:
        proc = subprocess.run([sys.executable, "-m", "mmcot_cli", "train", "--stage", "rationale", "--data", data,
                               "--text-model", "t5-scratch", "--out", tmp_path / "run", "--epochs", "2",
                               "--batch-size", "1", "--max-output-len", "8", "--eval-every", "0", *TINY_ARGS],
                              stdout=out_file, stderr=err_file, stdin=subprocess.DEVNULL, env=env, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "\x1b[" not in text and "\r" not in text  # no bar redrawn in place: lines a log keeps
    steady = re.findall(r"^train rationale: (\d+)/96 \(\d+%\)  loss ([\d.]+)  ([\d.]+) samples/s  "
                        r"elapsed \d+:\d\d  ETA \d+:\d\d$", text, re.M)
    assert len(steady) >= 2, text
    assert [int(done) for done, _, _ in steady] == sorted(int(done) for done, _, _ in steady)
    assert re.search(r"^train rationale: 96/96 \(100%\)  loss [\d.]+  [\d.]+ samples/s  elapsed \d+:\d\d$", text,
                     re.M), text
    assert re.findall(r"^train rationale: step (\d+)/96  loss [\d.]+  lr ", text, re.M) == ["25", "50", "75", "96"]
    assert "train rationale: epoch 2  step 96  train loss" in text
    assert re.search(r"│ final train loss +│ +\d+\.\d{4} │", text), text  # the summary table, uncut
    assert "…" not in text and out.read_text() == ""  # stdout stays for --json


def test_demo_pipelines_progress_reaches_a_log_as_steady_lines(monkeypatch):
    """`mmcot demo > log 2>&1`: the pipelines run in child processes that forward their bars; the parent, outside a
    terminal, prints each stage's progress as plain lines at the interval (it printed nothing for minutes)."""
    import itertools
    import queue

    buf = io.StringIO()
    ticks = itertools.count()  # one second per clock read: only the parent's drain thread reads it
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(ticks)))
    monkeypatch.setattr(progress, "_enabled", True)
    monkeypatch.setattr(progress, "_forward", None)
    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())
    monkeypatch.setattr(progress, "err_console", Console(file=buf, width=300))
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 10.0)
    events = queue.Queue()
    with progress.ForwardedProgress(events):
        child = progress._ForwardingProgress(events, "vision")  # what forward_to makes in a child
        events.put(("log", None, "▶ vision: train rationale"))
        task = child.add_task("train rationale", total=60, loss="-", sps="-")
        for _ in range(60):
            child.update(task, advance=1, loss="0.5000", sps="4.0")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "▶ vision: train rationale"
    steady = [line for line in lines if line.startswith("vision: train rationale: ") and "ETA" in line]
    assert len(steady) >= 3 and all("loss 0.5000  4.0 samples/s  elapsed" in line for line in steady), lines
    assert lines[-1].startswith("vision: train rationale: 60/60 (100%)  loss 0.5000")


def test_the_epoch_line_names_the_metric_and_counts_the_val_examples_apart():
    # the count is not a metric: "val examples 50.00 (best so far)" was printed beside the metric
    from mmcot_cli.training.log_lines import metrics_line

    line = metrics_line("rationale", {"epoch": 1, "step": 7, "train_loss": 7.9982, "val_rougeL": 12.5, "best": True,
                                      "samples_per_s": 1.2, "val_examples": 50})
    assert line == ("train rationale: epoch 1  step 7  train loss 7.9982  val rougeL 12.50 (best so far)  "
                    "on 50 val examples  1.2 samples/s")
