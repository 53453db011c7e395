"""`mmcot` command line: one module per command or small group of commands; each parses options, calls the
library (the subpackages of mmcot_cli) and prints a table or `--json`."""

import importlib

from mmcot_cli.cli.app import (
    GuardedStdout,
    OrderedGroup,
    app,
    dash_path_hint,
    fill_closed_streams,
    non_utf8_argument,
    one_line,
    silence_stdout,
    tolerate_narrow_streams,
    utf8_file_names,
)
from mmcot_cli.errors import TERMINATING_SIGNALS, StdoutError, Terminated

# One module per command (or small group); listed in the order `mmcot --help` shows them.
COMMAND_MODULES = (
    "demo",
    "backbones",  # backbones and env
    "prepare",
    "extract",
    "train",
    "generate",  # generate and ask
    "score",
    "report",  # report and compare
    "rationales",  # import and filter teacher rationales
    "imports",  # import-run and import-features (the original release's checkpoints and features)
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"mmcot_cli.cli.{_name}")

# What `mmcot --help` lists, in this order (the pipeline's, the demo first), one line each; every command's own
# --help keeps its full docstring.
COMMAND_LINES = {
    "demo": "Offline demo: the whole pipeline, with and without images.",
    "prepare": "ScienceQA, A-OKVQA or your own JSONL → a DATA_DIR.",
    "prompts": "The exact (source, target) strings a model trains on.",
    "backbones": "List vision and text backbones (built-in and plugins).",
    "env": "Versions, devices, CPU; whether the libraries fit together.",
    "extract": "Vision features into a memory-mapped store (resumable).",
    "train": "Train one stage: rationale or answer.",
    "generate": "Predictions of a trained run → preds-<split>.jsonl.",
    "ask": "Questions (+ image): rationale, then answer; --questions FILE.jsonl.",
    "score": "Accuracy by category; rationale ROUGE-L and BLEU.",
    "report": "One self-contained HTML report of one or more runs.",
    "compare": "Results side by side, with differences from the first.",
    "rationales": "Teacher rationales: import them, keep the correct ones.",
    "import-features": "The original's released feature file → a store.",
    "import-run": "A fine-tuned checkpoint of the original → a run.",
}


def _list_commands_in_order() -> None:

    OrderedGroup.order = tuple(COMMAND_LINES)
    for info in [*app.registered_commands, *app.registered_groups]:
        name = info.name or info.callback.__name__
        info.short_help = COMMAND_LINES.get(name)  # a command without a line shows its docstring (and is listed last)


_list_commands_in_order()


def _stdout_fault(error: Exception) -> None:
    """Standard output cannot be written (`| head -1`, `> /dev/full`): one line on stderr, exit 1."""
    import sys


    silence_stdout()
    try:
        message = error if isinstance(error, StdoutError) else StdoutError(error)
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
    except OSError:
        pass
    sys.exit(1)


def _rich_raises_broken_pipe() -> None:
    """Rich exits silently (code 1) on a closed pipe; raise instead, so it gets the same one line as any other
    stdout fault."""
    import errno

    from rich.console import Console

    def raise_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    Console.on_broken_pipe = raise_broken_pipe


def _on_sigterm(handler):
    """Install `handler` (one, or one per signal as returned here) for SIGTERM and SIGHUP (TERMINATING_SIGNALS);
    returns the previous ones (None where signals cannot be set: a thread)."""
    import signal

    handlers = handler if isinstance(handler, dict) else dict.fromkeys(TERMINATING_SIGNALS, handler)
    try:
        return {name: signal.signal(getattr(signal, name), handlers[name]) for name in TERMINATING_SIGNALS}
    except ValueError:
        return None


def main() -> None:
    """Console entry point. Bad option values become one stderr line with exit code 2 (not a usage box);
    an unwritable stdout (closed pipe, full device) becomes one line and exit 1, also for --help. SIGTERM
    unwinds like Ctrl-C (temporary files removed, child processes ended, locks released) and exits 143."""
    import sys

    utf8_file_names()  # a non-UTF-8 locale (LC_ALL=C, PYTHONUTF8=0): the same command again in UTF-8 mode
    fill_closed_streams()  # `>&-` / `2>&-`: before any file is opened (it would take fd 1 or 2)
    previous = _on_sigterm(Terminated.on_signal)
    _rich_raises_broken_pipe()
    tolerate_narrow_streams()
    original = sys.stdout
    sys.stdout = GuardedStdout(original)
    try:
        code = _run()
        sys.stdout.flush()  # buffered output (help, tables) fails here when stdout cannot be written
    except (OSError, StdoutError) as e:  # only stdout faults get here: commands report their own errors
        _stdout_fault(e)
    except Terminated:  # between commands' own handlers (e.g. while flushing)
        code = Terminated.exit_code
    except SystemExit:
        if "PacifyFlushWrapper" in type(sys.stdout).__name__:  # click met a closed pipe (help) and exits silently
            sys.stderr = getattr(sys.stderr, "wrapped", sys.stderr)
            _stdout_fault(BrokenPipeError(32, "Broken pipe"))
        raise
    finally:
        sys.stdout = original
        if previous is not None:
            _on_sigterm(previous)
    sys.exit(code)


def _run() -> int:

    import sys

    import typer

    bad_argument = non_utf8_argument(sys.argv[1:])
    if bad_argument:
        typer.echo(f"error: {bad_argument}", err=True)
        return 2
    try:
        code = app(standalone_mode=False)
    except typer.Abort as e:  # Ctrl-C or SIGTERM outside a command's own handler
        terminated = isinstance(e.__cause__, Terminated)
        typer.echo("terminated" if terminated else "interrupted", err=True)
        return Terminated.exit_code if terminated else 130
    except typer.TyperException as e:  # typer's (vendored click) UsageError, BadParameter, NoSuchOption …
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        if e.format_message():  # empty for `mmcot` alone, which has already printed the help
            typer.echo(f"error: {one_line(where + e.format_message() + dash_path_hint(e))}{hint}", err=True)
        return getattr(e, "exit_code", 1)
    except typer.Exit as e:
        return e.exit_code
    return code if isinstance(code, int) else 0
