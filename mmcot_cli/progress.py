"""Rich progress bars that switch themselves off for --quiet or when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys
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

# Progress and human-readable tables go to stderr so stdout stays clean for --json and JSONL.
err_console = Console(stderr=True)
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
    """A Progress whose bar is disabled when progress output is off. Extra columns e.g. loss/throughput."""
    if _forward is not None:
        return _ForwardingProgress(*_forward)  # type: ignore[return-value]
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *extra_columns,
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled(), transient=False,
    )


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
