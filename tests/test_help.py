"""`mmcot --help`: every command listed once, in the pipeline's order, with a one-line description."""

import re

from mmcot_cli.cli import COMMAND_LINES, app


def test_help_lists_every_command_in_order_on_one_line(cli):
    registered = {c.name or c.callback.__name__ for c in app.registered_commands} | {
        g.name for g in app.registered_groups}
    assert registered == set(COMMAND_LINES)  # a new command needs its line here
    result = cli("--help", terminal_width=80)
    assert result.exit_code == 0, result.output
    rows = [m.groups() for m in re.finditer(r"^│ (\S+) +(.+?) *│$", result.stdout, re.M)]
    listed = [(name, text) for name, text in rows if name in COMMAND_LINES]
    assert [name for name, _ in listed] == list(COMMAND_LINES)
    assert all(text == COMMAND_LINES[name] for name, text in listed)  # not wrapped onto a second line


def test_a_command_help_keeps_its_full_description(cli):
    result = cli("report", "--help", terminal_width=80)
    assert result.exit_code == 0 and "error gallery" in result.stdout


def _every_command():
    return ["train", "generate", "ask", "score", "report", "compare", "prepare", "prompts", "extract", "demo",
            "import-run", "import-features", "backbones", "rationales import", "rationales filter"]


def test_every_help_keeps_its_defaults_and_shows_no_type_placeholders(cli):
    """A '[default: …]' written inside a help text is Rich markup and vanished, leaving "images ." behind; typer
    writes <bool>/<int>/<str> where a word reads better (cli.options.readable_help_types)."""
    for command in _every_command():
        result = cli(*command.split(), "--help", terminal_width=250)
        assert result.exit_code == 0, (command, result.output)
        text = result.stdout
        assert not re.search(r"[\w)] \.(\s|$)", text), (command, re.findall(r".{40}[\w)] \.", text))
        assert not re.search(r"<(bool|int|float|str|path)>", text), command
    train = cli("train", "--help", terminal_width=250).stdout
    assert "[default: 20]" in train and "[default: 5e-05]" in train  # --epochs, --lr: defaults shown
