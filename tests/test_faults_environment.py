"""Fault class 11 (issue 26): the environment. A command started with stdout or stderr closed (`>&-`, `2>&-`)
gives no traceback and a meaningful exit: a closed stdout is one error line when the command's answer goes
there (exit 1); a closed stderr only discards messages (the exit code still tells); no file the command opens
lands on descriptor 1 or 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
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


def _answers(world, tmp_path):
    path = tmp_path / "answers.jsonl"
    rows = [json.loads(x) for x in (world.data / "test.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps({"qid": r["qid"], "prediction": "The answer is (A).", "stage": "answer"})
                            + "\n" for r in rows))
    return path


@pytest.mark.parametrize("command", ["compare", "compare-markdown", "env", "backbones", "ask", "help", "version",
                                     "report", "extract", "train"])
def test_closed_stdout_or_stderr_in_every_kind_of_command(world, tmp_path, command):
    """Commands whose answer goes to stdout (a table, JSON, Markdown, help): stdout closed is the one error line,
    exit 1; commands that write files (report, extract, train) succeed with stdout closed, their output whole.
    With stderr closed every one keeps its exit code (0) and writes nothing to the descriptors it does not own."""
    out = tmp_path / "out"
    args = {
        "compare": ["compare", _answers(world, tmp_path), "--data", world.data, "--json"],
        "compare-markdown": ["compare", _answers(world, tmp_path), "--data", world.data, "--markdown"],
        "env": ["env", "--json"], "backbones": ["backbones"], "help": ["report", "--help"], "version": ["--version"],
        "ask": ["ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices",
                "a|b", "--device", "cpu"],
        "report": ["report", _answers(world, tmp_path), "--data", world.data, "--out", out],
        "extract": ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--workers", "0",
                    "--out", out],
        "train": ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                  "t5-scratch", "--out", out, "--epochs", "1", "--limit-train", "4", "--val-split", "none",
                  "--text-option", "d_model=16", "--text-option", "layers=1", "--text-option", "heads=2",
                  "--text-option", "d_ff=32"],
    }[command]
    writes_files = command in ("report", "extract", "train")
    res = _run_closed(args, close=[1])
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    if writes_files:
        assert res.returncode == 0 and out.exists(), res.stderr
    else:
        lines = [x for x in res.stderr.splitlines() if x.strip() and not x.startswith("warning:")]
        assert res.returncode == 1 and lines == ["error: cannot write to standard output (closed)"], res.stderr
    shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    res = _run_closed(args, close=[2])
    assert res.returncode == 0 and (out.exists() or res.stdout.strip()), res.returncode


# --------------------------------------------------------------------------- missing libraries, no network

_BLOCKER = '''
import os, sys
_blocked = set(filter(None, os.environ.get("MMCOT_TEST_BLOCK", "").split(",")))
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
'''


def _without(tmp_path, modules, args, env=None):
    """`python -m mmcot_cli ARGS` in an interpreter where `modules` cannot be imported (as in an install that
    lacks them)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": path, "MMCOT_TEST_BLOCK": ",".join(modules),
                                            "HF_HUB_OFFLINE": "1", **(env or {})})


def _rationale_preds(world, tmp_path):
    path = tmp_path / "rationales.jsonl"
    rows = [json.loads(x) for x in (world.data / "test.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps({"qid": r["qid"], "prediction": "Solution: they repel.",
                                        "stage": "rationale"}) + "\n" for r in rows))
    return path


def _one_line(res, *needles):
    lines = [x for x in res.stderr.splitlines() if x.strip() and not x.startswith("warning: ")]
    assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr and all(n in lines[0] for n in needles), lines[0]


def test_score_without_rouge_score_or_nltk_is_one_line(world, tmp_path):
    preds = _rationale_preds(world, tmp_path)
    _one_line(_without(tmp_path, ["rouge_score"], ["score", preds, "--data", world.data]), "pip install rouge-score")
    _one_line(_without(tmp_path, ["nltk"], ["score", preds, "--data", world.data]), "nltk")


def test_report_without_matplotlib_is_one_line(world, tmp_path):
    run = world.copy("run", tmp_path)
    ok = mmcot_generate(world, run)
    assert ok.exit_code == 0, ok.stderr
    out = tmp_path / "r.html"
    _one_line(_without(tmp_path, ["matplotlib"], ["report", run, "--data", world.data, "--out", out]),
              "pip install matplotlib")
    assert not out.exists()


def mmcot_generate(world, run):
    from faultkit import mmcot

    return mmcot("-q", "generate", "--run", run, "--data", world.data, "--device", "cpu")


def test_an_unreachable_hub_without_offline_mode_is_one_line(tmp_path):
    """No HF_HUB_OFFLINE, an endpoint nobody listens on: one line naming the source, no retries' warnings."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    for args, needle in ((["import-run", "some-org/some-model", "--stage", "answer", "--out", tmp_path / "run"],
                          "some-org/some-model"),
                         (["prepare", "derek-thomas/ScienceQA", "--out", tmp_path / "data"], "derek-thomas/ScienceQA")):
        res = subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                             timeout=300, env=env)
        _one_line(res, needle)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("case", ["train", "extract-clip", "extract-clip-tag", "score-similarity"])
def test_commands_that_fetch_weights_say_an_unreachable_hub_in_one_line(world, tmp_path, case):
    """The same as above, in a real process (what lands on stderr, logging included), for train's pretrained text
    models, clip (open_clip logged "ERROR:root: Failed to download weights" above a 400-character line; a tag's
    weights come from another hub repo) and score's similarity model: one line naming what could not be fetched,
    before any output exists (test_offline_weights: every backbone, in-process)."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("HF_HUB_OFFLINE", None)
    out = tmp_path / "out"
    extract = ["extract", "--data", world.data, "--split", "test", "--workers", "0", "--out", out, "-b"]
    args, needle = {
        "train": (["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                   "flan-t5-base", "--out", out], "google/flan-t5-base"),
        "extract-clip": ([*extract, "clip"], "timm/resnet50_clip.openai"),
        "extract-clip-tag": ([*extract, "clip", "--variant", "ViT-B-32", "--weights", "laion2b_s34b_b79k"],
                             "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
        "score-similarity": (["score", _rationale_preds(world, tmp_path), "--data", world.data, "--similarity"],
                             "sentence-transformers/all-MiniLM-L6-v2"),
    }[case]
    res = subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                         timeout=300, env=env)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert needle in lines[0] and "Traceback" not in res.stderr and len(lines[0]) < 400, lines[0]
    assert not out.exists()


_ABSENT = """
import os, sys
for _name in filter(None, os.environ.get("MMCOT_TEST_ABSENT", "").split(",")):
    sys.modules[_name] = None  # import fails and importlib.util.find_spec says None, as for a package not installed
"""


@pytest.mark.parametrize("command", ["import-run", "train"])
def test_a_spiece_only_checkpoint_without_sentencepiece_is_one_line(world, tmp_path, command):
    """UnifiedQA's layout (spiece.model, no tokenizer.json) where sentencepiece is not installed: one line naming
    the checkpoint and what to install, before any output exists (the blocker above makes the package look broken;
    here it is absent, as transformers' own availability check sees it)."""
    from t5_layouts import make_t5_dir

    ckpt = make_t5_dir(tmp_path / "ckpt", tokenizer="spiece", weights="bin", tied=True)
    site = tmp_path / "absent"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_ABSENT)
    out = tmp_path / "out"
    args = {"import-run": ["import-run", ckpt, "--stage", "answer", "--out", out],
            "train": ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data,
                      "--text-model", ckpt, "--out", out, "--epochs", "1", "--limit-train", "4",
                      "--val-split", "none"]}[command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "MMCOT_TEST_ABSENT": "sentencepiece", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                         timeout=300, env=env)
    _one_line(res, str(ckpt), "spiece.model only", "pip install sentencepiece")
    assert not out.exists()


@pytest.mark.parametrize("package", ["rouge_score", "matplotlib"])
def test_demo_without_a_library_it_needs_says_so_before_any_work(tmp_path, package):
    """The demo scored and drew its report only after training: without rouge-score or matplotlib it failed
    minutes in, leaving a half-written --out. Now one line before anything is written; --generate-only (which
    needs neither) still works."""
    site = tmp_path / "absent"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_ABSENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "MMCOT_TEST_ABSENT": package, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "demo"
    for extra in ([], ["--ablation"]):
        res = subprocess.run([sys.executable, "-m", "mmcot_cli", "demo", "--tiny", "--out", str(out), *extra],
                             capture_output=True, text=True, timeout=300, env=env)
        _one_line(res, f"pip install {package.replace('_', '-')}")
        assert not out.exists()
    res = subprocess.run([sys.executable, "-m", "mmcot_cli", "-q", "demo", "--generate-only", "--tiny", "--out",
                          str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0 and (out / "problems.json").is_file(), res.stderr


@pytest.mark.parametrize("command", ["prepare", "extract", "train", "generate", "score", "report"])
def test_unwritable_home_tmpdir_and_caches_change_nothing(world, tmp_path, command):
    """HOME, TMPDIR, the HF cache and XDG_CACHE_HOME where nothing can be created (below /dev/null: "Not a
    directory"): every offline command works as usual and says nothing about it (matplotlib's two warnings about
    its config folder, printed under `report`, are held back)."""
    out = tmp_path / "out"
    nowhere = "/dev/null/nowhere"
    env = {**os.environ, "HOME": nowhere, "TMPDIR": nowhere, "HF_HOME": nowhere, "XDG_CACHE_HOME": nowhere,
           "XDG_CONFIG_HOME": nowhere, "HF_HUB_OFFLINE": "1"}
    env.pop("MPLCONFIGDIR", None)
    args = {
        "prepare": ["prepare", world.bench, "--out", out],
        "extract": ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--workers", "2",
                    "--out", out],
        "train": ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                  "t5-scratch", "--out", out, "--epochs", "1", "--limit-train", "4", "--val-split", "none",
                  "--text-option", "d_model=16", "--text-option", "layers=1", "--text-option", "heads=2",
                  "--text-option", "d_ff=32"],
        "generate": ["generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out", out],
        "score": ["score", _rationale_preds(world, tmp_path), "--data", world.data, "--json"],
        "report": ["report", _answers(world, tmp_path), "--data", world.data, "--out", out],
    }[command]
    res = subprocess.run([sys.executable, "-m", "mmcot_cli", "-q", *map(str, args)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    noise = [x for x in res.stderr.splitlines() if not x.startswith("warning: every answer") and any(
        n in x.lower() for n in ("warning", "error", "traceback", "nowhere", "not a directory", "matplotlib"))]
    assert noise == [], res.stderr  # the summary tables are as always
    assert out.exists() or json.loads(res.stdout)["num_gold"] > 0
