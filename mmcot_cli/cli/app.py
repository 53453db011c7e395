"""The Typer app and what every command shares: error handling, --json output, progress switch."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import typer

from mmcot_cli import __version__, progress
from mmcot_cli.errors import MMCoTError

app = typer.Typer(
    name="mmcot",
    help="Multimodal chain-of-thought toolkit: prepare ScienceQA, extract vision features, train the two-stage "
    "fusion model, generate and score.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mmcot {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    progress.set_enabled(not quiet)


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, then exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def command(name: str | None = None, **kwargs) -> Callable:
    """Register a Typer command whose library errors become one stderr line and the error's exit code."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            try:
                return fn(*args, **kw)
            except MMCoTError as e:
                fail(str(e), e.exit_code)
            except KeyboardInterrupt:
                typer.echo("interrupted", err=True)
                raise typer.Exit(130)

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate
