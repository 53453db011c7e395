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
    "report",  # report and compare
    "rationales",  # import and filter teacher rationales
    "imports",  # import-run and import-features (the original release's checkpoints and features)
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"mmcot_cli.cli.{_name}")


def main() -> None:
    """Console entry point. Bad option values become one stderr line with exit code 2 (not a usage box)."""
    import sys

    import typer

    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.TyperException as e:  # typer's (vendored click) UsageError, BadParameter, NoSuchOption …
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        if e.format_message():  # empty for `mmcot` alone, which has already printed the help
            typer.echo(f"error: {where}{e.format_message()}{hint}", err=True)
        sys.exit(getattr(e, "exit_code", 1))
    sys.exit(code if isinstance(code, int) else 0)
