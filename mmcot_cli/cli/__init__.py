"""`mmcot` command line. Each command module parses options and calls one library function."""

import importlib

from mmcot_cli.cli.app import app

# One module per command (or small group); listed in the order `mmcot --help` shows them.
COMMAND_MODULES = (
    "demo",
    "backbones",
    "prepare",
    "extract",
    "train",
    "generate",  # generate and ask
    "score",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"mmcot_cli.cli.{_name}")


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot print "Exception ignored … BrokenPipe"."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _stdout_fault(error: OSError) -> None:
    """Standard output cannot be written (`| head -1`, `> /dev/full`): one line on stderr, exit 1."""
    import sys

    from mmcot_cli.errors import StdoutError

    _silence_stdout()
    try:
        sys.stderr.write(f"error: {StdoutError(error)}\n")
        sys.stderr.flush()
    except OSError:
        pass
    sys.exit(1)


def main() -> None:
    """Console entry point. Bad option values become one stderr line with exit code 2 (not a usage box);
    an unwritable stdout (closed pipe, full device) becomes one line and exit 1, also for --help."""
    import sys

    try:
        code = _run()
        sys.stdout.flush()  # buffered output (help, tables) fails here when stdout cannot be written
    except OSError as e:  # only stdout faults get here: commands turn their own OSErrors into one line
        _stdout_fault(e)
    sys.exit(code)


def _run() -> int:

    import typer

    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return 130
    except typer.TyperException as e:  # typer's (vendored click) UsageError, BadParameter, NoSuchOption …
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        if e.format_message():  # empty for `mmcot` alone, which has already printed the help
            typer.echo(f"error: {where}{e.format_message()}{hint}", err=True)
        return getattr(e, "exit_code", 1)
    except typer.Exit as e:
        return e.exit_code
    return code if isinstance(code, int) else 0
