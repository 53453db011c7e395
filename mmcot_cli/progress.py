"""Rich progress bars that switch themselves off for --quiet or when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")

# Progress and human-readable tables go to stderr so stdout stays clean for --json and JSONL.
err_console = Console(stderr=True)
_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled and sys.stderr.isatty()


def make_progress(*extra_columns) -> Progress:
    """A Progress whose bar is disabled when progress output is off. Extra columns e.g. loss/throughput."""
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
