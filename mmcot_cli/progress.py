"""Progress: Rich bars in a terminal; outside one (a log file, a pipe) one plain line per task at a steady interval
(done/total, loss, samples/s, elapsed, ETA) and a last line when it ends; nothing with --quiet. Consoles that
never cut table cells to Rich's 80-column default outside a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

LOG_WIDTH = 240  # columns of a table written to a file or pipe: names such as flan-alpaca-base are never cut
LOG_INTERVAL_S = float(os.environ.get("MMCOT_PROGRESS_SECONDS", "15"))  # between two lines outside a terminal


def make_console(stderr: bool = False) -> Console:
    """A Console for tables: the terminal's width in one, LOG_WIDTH columns outside (Rich would assume 80)."""
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, width=None if tty or os.environ.get("COLUMNS") else LOG_WIDTH)


# Progress and human-readable tables go to stderr so stdout stays clean for --json and JSONL.
err_console = make_console(stderr=True)
_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _forward is not None or (_enabled and sys.stderr.isatty())


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Bars off inside (rich allows one live display: an outer bar keeps the screen); the user's --quiet choice
    is restored afterwards."""
    global _enabled
    was, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = was


def make_progress(*extra_columns) -> Progress:
    """A Progress whose bar is disabled when progress output is off; outside a terminal (and without --quiet) a
    LogProgress printing one line per task at a steady interval. Extra columns e.g. loss/throughput."""
    if _forward is not None:
        return _ForwardingProgress(*_forward)  # type: ignore[return-value]
    if _enabled and not sys.stderr.isatty():
        return LogProgress(err_console, LOG_INTERVAL_S)  # type: ignore[return-value]
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *extra_columns,
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled(), transient=False,
    )


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class LogProgress:
    """The part of rich's Progress API the library uses, printing plain lines for a log: at most one every
    `interval` seconds while a task advances, and, for a task that printed one, a last line when it completes.
    A task shorter than the interval prints nothing, and a failure adds no line to its one-line error."""

    def __init__(self, console: Console, interval: float = LOG_INTERVAL_S):
        self.console, self.interval = console, interval
        self.tasks: dict[int, dict] = {}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        for task_id, task in self.tasks.items():
            if exc_type is None and task["lines"] and not task["ended"]:
                self._print(task_id)
        return False

    def add_task(self, description: str, total=None, completed: float = 0, **fields) -> int:
        task_id = len(self.tasks)
        now = time.monotonic()
        self.tasks[task_id] = {"description": description, "total": total, "completed": completed,
                               "first": completed, "fields": fields, "start": now, "printed": now, "ended": False,
                               "lines": 0}
        return task_id

    def update(self, task_id, advance: float | None = None, completed: float | None = None, total=None,
               description: str | None = None, **fields) -> None:
        task = self.tasks[task_id]
        if advance:
            task["completed"] += advance
        if completed is not None:
            task["completed"] = completed
        if total is not None:
            task["total"] = total
        if description is not None:
            task["description"] = description
        task["fields"].update(fields)
        done = task["total"] is not None and task["completed"] >= task["total"]
        if (done and not task["ended"] and task["lines"]) or time.monotonic() - task["printed"] >= self.interval:
            self._print(task_id)
        task["ended"] = task["ended"] or done

    def advance(self, task_id, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def line(self, task_id) -> str:
        task = self.tasks[task_id]
        done, total, elapsed = task["completed"], task["total"], time.monotonic() - task["start"]
        parts = [f"{done:,.0f}/{total:,.0f} ({100 * done / total:.0f}%)" if total else f"{done:,.0f}"]
        for name, value in task["fields"].items():
            if value not in (None, "", "-"):
                parts.append(f"{value} samples/s" if name == "sps" else f"{name} {value}")
        parts.append(f"elapsed {_clock(elapsed)}")
        rate = (done - task["first"]) / elapsed if elapsed > 0 else 0
        if total and rate > 0 and done < total:
            parts.append(f"ETA {_clock((total - done) / rate)}")
        return f"{task['description']}: " + "  ".join(parts)

    def _print(self, task_id) -> None:
        self.console.print(self.line(task_id), highlight=False, soft_wrap=True)
        self.tasks[task_id]["printed"] = time.monotonic()
        self.tasks[task_id]["lines"] += 1


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in iterable:
            yield item
            progress.advance(task)


# --------------------------------------------------------------------------- progress from worker processes
# Several pipelines can run in child processes (e.g. `mmcot demo`); two processes drawing bars on one terminal
# garble it, so children forward their progress events to the parent, which draws every bar in one display.

_forward = None  # (queue, prefix) in a worker process whose bars the parent draws


def forward_to(queue, prefix: str) -> None:
    """In a worker process: send bars and log lines to `queue` (drained by `ForwardedProgress`)."""
    global _forward
    _forward = (queue, prefix)


def log(message: str) -> None:
    """A line above the bars: printed here, or forwarded to the parent from a worker process."""
    if _forward is not None:
        _forward[0].put(("log", None, message))
    else:
        err_console.print(message)


def note(message: str) -> None:
    """A progress line (loss every N steps, an epoch's result): as `log`, but not with --quiet."""
    if _forward is not None or _enabled:
        log(message)


class _ForwardingProgress:
    """The part of rich's Progress API the library uses, sending events to the parent process."""

    _next_id = 0

    def __init__(self, queue, prefix: str):
        self.queue, self.prefix = queue, prefix

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description: str, total=None, **fields):
        _ForwardingProgress._next_id += 1
        task = f"{self.prefix}{_ForwardingProgress._next_id}"
        self.queue.put(("add", task, {"description": f"{self.prefix}: {description}", "total": total, **fields}))
        return task

    def update(self, task, **fields):
        self.queue.put(("update", task, fields))

    def advance(self, task, advance: float = 1):
        self.queue.put(("update", task, {"advance": advance}))


class _FieldsColumn(ProgressColumn):
    """Whatever extra fields a forwarded task carries (loss, samples/s) — tasks differ in which they have."""

    def render(self, task):
        from rich.text import Text

        parts = [f"loss {task.fields['loss']}" if "loss" in task.fields else "",
                 f"{task.fields['sps']} samples/s" if "sps" in task.fields else ""]
        return Text("  ".join(p for p in parts if p))


class ForwardedProgress:
    """In the parent: a context manager that draws the bars and prints the log lines its workers forward.

    Usage: `with ForwardedProgress(queue): ...run workers that called forward_to(queue, name)...`."""

    def __init__(self, queue):
        import threading

        self.queue = queue
        self.progress = make_progress(_FieldsColumn())
        self.tasks: dict = {}
        self.thread = threading.Thread(target=self._drain, daemon=True)

    def _drain(self) -> None:
        while True:
            kind, task, payload = self.queue.get()
            if kind == "stop":
                return
            if kind == "log":
                self.progress.console.print(payload)
            elif kind == "add":
                self.tasks[task] = self.progress.add_task(**payload)
            elif kind == "update" and task in self.tasks:
                self.progress.update(self.tasks[task], **payload)

    def __enter__(self):
        self.progress.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.queue.put(("stop", None, None))
        self.thread.join()
        self.progress.__exit__(*exc)
        return False
