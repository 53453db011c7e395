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


def main() -> None:
    app()
