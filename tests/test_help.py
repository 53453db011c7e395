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


def test_help_in_a_pipe_is_self_contained_uncut_and_has_no_placeholders(tmp_path):
    """`mmcot X --help | less` as a wheel user reads it (issue 25): no pointer to docs/*.md or other files a wheel
    lacks, no type placeholder (<bool>, <list[str]>) or unfilled {name}, and no flag or file name cut with "…"
    (Rich assumed 80 columns outside a terminal)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins"),
                                                         os.environ.get("PYTHONPATH", "")])}
    env.pop("COLUMNS", None)
    env.pop("TERMINAL_WIDTH", None)
    probe = ("import sys\nfrom mmcot_cli.cli import app\nfor command in sys.argv[1:]:\n"
             "    print('=== ' + command, flush=True)\n"
             "    try:\n        app(command.split() + ['--help'], prog_name='mmcot')\n"
             "    except SystemExit:\n        pass\n")
    proc = subprocess.run([sys.executable, "-c", probe, "", *_every_command(), "env"], capture_output=True,
                          text=True, env=env, timeout=120)  # stdout a pipe, as in `mmcot train --help | cat`
    assert proc.returncode == 0, proc.stderr
    pages = dict(page.split("\n", 1) for page in proc.stdout.split("=== ")[1:])
    assert len(pages) == len(_every_command()) + 2  # and `mmcot --help`
    for command, text in pages.items():
        assert "Usage: mmcot" in text, command
        assert not re.search(r"docs/|README|CHANGELOG|\b(?!ablation\.md)\w+\.md\b", text), (command, text)
        assert not re.search(r"<(bool|int|float|str|path|list\[\w+\])>", text), command
        assert not re.search(r"\{(source|path|name|qid|split)\}(?!')", text), command  # '{split}' in --out: typed
        cut = re.findall(r".{30}[^\s|]…", text)  # a word cut short ("preds-<split>.jso…"), not "A|B|…" or " …"
        assert not cut, (command, cut)


def test_format_detection_error_is_whole_and_names_problems_file(cli, tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("{}")
    args = ["prepare", str(tmp_path / "src"), "--out", str(tmp_path / "data")]
    monkeypatch.setattr("sys.argv", ["mmcot", *args])  # as a shell gives them: quoted paths do not count
    res = cli(*args)
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert "cannot tell its format; pass --format scienceqa|hub|aokvqa|jsonl" in line
    assert "problems.json (or --problems FILE)" in line and "derek-thomas/ScienceQA" in line
    assert line.endswith("answer))") and "docs/" not in line  # not cut at the line limit, self-contained
    assert len(line) - len(str(tmp_path / "src")) < 380  # within the 400 characters whatever the path


def test_a_renamed_problems_file_beside_pid_splits_is_named_with_the_option(cli, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "my_problems.json").write_text("{}")
    (tmp_path / "src" / "pid_splits.json").write_text("{}")
    res = cli("prepare", tmp_path / "src", "--out", tmp_path / "data")
    assert res.exit_code == 1
    assert (f"cannot tell its format; is my_problems.json its problems file? pass --problems "
            f"{tmp_path / 'src' / 'my_problems.json'}, or pass --format") in res.stderr
