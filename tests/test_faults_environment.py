"""Fault class 11 (issue 26): the environment. A command started with stdout or stderr closed (`>&-`, `2>&-`)
gives no traceback and a meaningful exit: a closed stdout is one error line when the command's answer goes
there (exit 1); a closed stderr only discards messages (the exit code still tells); no file the command opens
lands on descriptor 1 or 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from faultkit import world  # noqa: F401 (fixture)


def _run_closed(args, close, env=None):
    """`python -m mmcot_cli ARGS` with the given descriptors closed in the child."""
    keep = {1: subprocess.PIPE, 2: subprocess.PIPE}
    return subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], stdout=keep[1], stderr=keep[2],
                          text=True, timeout=300, preexec_fn=lambda: [os.close(fd) for fd in close],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _results(tmp_path, world, twice=False):
    qid = json.loads((world.data / "test.jsonl").read_text().splitlines()[0])["qid"]
    path = tmp_path / "results.json"
    path.write_text('{"results": {"%s": 0%s}}' % (qid, f', "{qid}": 1' if twice else ""))
    return path


def test_closed_stdout_is_one_error_line_when_the_answer_goes_there(world, tmp_path):
    res = _run_closed(["score", _results(tmp_path, world), "--data", world.data, "--json"], close=[1])
    lines = [x for x in res.stderr.splitlines() if x.strip() and not x.startswith("warning:")]
    assert res.returncode == 1 and lines == ["error: cannot write to standard output (closed)"], res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr


def test_closed_stderr_keeps_the_exit_code(world, tmp_path):
    ok = _run_closed(["score", _results(tmp_path, world), "--data", world.data, "--json"], close=[2])
    assert ok.returncode == 0 and json.loads(ok.stdout)["num_gold"] > 0
    bad = _run_closed(["score", _results(tmp_path, world, twice=True), "--data", world.data], close=[2])
    assert bad.returncode == 1 and bad.stdout == ""


def test_both_closed_a_command_writing_files_succeeds_and_nothing_lands_on_fd_1_or_2(world, tmp_path):
    out = tmp_path / "p.jsonl"
    res = _run_closed(["generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out", out],
                      close=[1, 2])
    assert res.returncode == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]  # whole JSONL: no table or warning inside
    assert len(rows) == len((world.data / "test.jsonl").read_text().splitlines())
