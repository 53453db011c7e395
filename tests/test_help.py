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
