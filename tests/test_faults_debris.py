"""Fault class 3 (issue 17): debris from a killed writer. Every writer removes what a killed run of it left
(staging folders, temporary files of atomic writes) so the rerun works; an append-only log tolerates and trims a
torn last line; SIGTERM unwinds like Ctrl-C — temporary files removed, child processes ended, locks released —
and exits 143 (Ctrl-C: 130), in every command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import (
    TINY_TEXT,
    alive,
    aokvqa_source,
    assert_one_error,
    children,  # noqa: F401 (fixture)
    descendants,
    jsonl_source,
    leftovers,
    mmcot,
    predictions,
    release_features,
    start_mmcot,
    wait_for,
    world,  # noqa: F401 (fixtures)
)

# A command run in a child process that pauses (prints PAUSED, then waits) right after `target` ran once: a signal
# sent then arrives in the middle of the write, every time. It waits in short sleeps, as real work returns to the
# interpreter often: a signal that the kernel hands to another thread is acted on when the main thread next runs.
_PAUSING = r"""
import importlib, sys, time
parts = sys.argv[1].split(".")
for i in range(len(parts) - 1, 0, -1):  # the longest importable prefix, then attributes (a class's method)
    try:
        owner = importlib.import_module(".".join(parts[:i]))
        break
    except ImportError:
        continue
for name in parts[i:-1]:
    owner = getattr(owner, name)
attr = parts[-1]
real = getattr(owner, attr)
def paused(*args, **kwargs):
    result = real(*args, **kwargs)
    print("PAUSED", flush=True)
    for _ in range(6000):
        time.sleep(0.1)
    return result
setattr(owner, attr, paused)
from mmcot_cli.cli import main
sys.argv = ["mmcot", *sys.argv[2:]]
main()
"""


def _paused_command(children, target: str, *args) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _PAUSING, target, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    children.append(proc)
    line = proc.stdout.readline()
    assert "PAUSED" in line, proc.stderr.read() if proc.poll() is not None else line
    return proc


def _ended_by_sigterm(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "terminated" and "Traceback" not in stderr, stderr
    return stderr


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_prepare_killed_while_staging_then_rerun(world, tmp_path, how, children):
    """The issue's case: SIGTERM or kill -9 during prepare left .staged.*.tmp and the rerun exited 2 ("was not
    written by `mmcot prepare`"). SIGTERM now cleans up itself (exit 143); after kill -9 the rerun cleans up."""
    data = tmp_path / "data"
    proc = _paused_command(children, "mmcot_cli.data.records.write_jsonl", "-q", "prepare", world.bench, "--out",
                           data)
    assert list(data.glob(".staged.*.tmp"))  # in the middle of staging the split files
    if how == "sigterm":
        _ended_by_sigterm(proc)
        assert not data.exists()  # the folder it had created, its staging folder and its lock are gone
    else:
        proc.kill()
        proc.communicate()
        assert list(data.glob(".staged.*.tmp")) and (data / ".mmcot-lock").exists()
    res = mmcot("-q", "prepare", world.bench, "--out", data)
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in data.iterdir()) == [".mmcot-output.json", "manifest.json", "test.jsonl",
                                                      "train.jsonl", "val.jsonl"]


def test_prepare_killed_over_an_earlier_data_dir_leaves_it_whole(world, tmp_path, children):
    data = tmp_path / "data"
    assert mmcot("-q", "prepare", world.bench, "--out", data).exit_code == 0
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    proc = _paused_command(children, "mmcot_cli.data.records.write_jsonl", "-q", "prepare", world.bench, "--out",
                           data, "--splits", "test")
    proc.kill()
    proc.communicate()
    assert {p.name: p.read_bytes() for p in data.iterdir() if p.name in before} == before
    assert mmcot("-q", "prepare", world.bench, "--out", data, "--splits", "test").exit_code == 0
    assert sorted(p.name for p in data.iterdir()) == [".mmcot-output.json", "manifest.json", "test.jsonl"]


def test_extract_sigterm_ends_its_dataloader_workers_and_resumes(world, tmp_path, children):
    store = tmp_path / "store"
    args = ["-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--out", store,
            "--workers", "2", "--chunk-size", "8", "--batch-size", "4"]
    proc = _paused_command(children, "mmcot_cli.features.store.ChunkWriter.write_chunk", *args)
    workers = descendants(proc.pid)
    assert len(workers) >= 2  # DataLoader workers decoding images
    _ended_by_sigterm(proc)
    wait_for(lambda: not any(alive(p) for p in workers), 30, "the DataLoader workers to end")
    assert leftovers(store) == [] and not list(store.glob(".mmcot-lock*"))
    res = mmcot("-q", "extract", *args[2:], "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["chunks_skipped"] == 1 and summary["complete"]  # the chunk written before SIGTERM is kept


@pytest.mark.slow  # a tiny demo gets its two pipelines training before the signal: ~20–40 s on 2 busy cores
def test_demo_sigterm_leaves_no_worker_processes(tmp_path, children):
    """The issue's case: SIGTERM to `mmcot demo` left its worker processes alive (idle for over 6 minutes)."""
    out = tmp_path / "demo"
    proc = start_mmcot("-q", "demo", "--tiny", "--out", out)
    children.append(proc)
    runs = [out / "runs" / mode / "rationale" / ".mmcot-lock" for mode in ("multimodal", "text_only")]
    # any pipeline training will do: on busy cores one pipeline can finish its rationale stage before the other
    # starts, so both locks need never exist at once
    wait_for(lambda: any(p.exists() for p in runs) or proc.poll() is not None, 300, "a pipeline training")
    kids = descendants(proc.pid)  # the pipeline workers, the progress manager, the resource tracker
    assert proc.poll() is None and len(kids) >= 1, kids
    os.kill(proc.pid, signal.SIGTERM)  # the parent alone, as `kill PID` does
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "terminated" and "Traceback" not in stderr, stderr
    wait_for(lambda: not any(alive(p) for p in kids), 30, "the demo's child processes to end")
    assert not list(out.rglob(".mmcot-lock*"))


def _train(world, out, *extra):
    return mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                 "t5-scratch", "--out", out, "--val-split", "none", "--limit-train", "8", "--batch-size", "2",
                 "--save-every", "2", *TINY_TEXT, *extra)


@pytest.mark.parametrize("tail", [b'{"epoch": 1, "step": 4, "train_lo', b"\x00" * 64])
def test_resume_trims_a_torn_last_metrics_line(world, tmp_path, tail):
    """The issue's case: a torn last line in metrics.jsonl (power loss) made --resume exit 1 ("invalid JSON")."""
    run = tmp_path / "run"
    assert _train(world, run, "--epochs", "1").exit_code == 0
    with open(run / "metrics.jsonl", "ab") as fh:
        fh.write(tail)
    assert mmcot("-q", "generate", "--run", run, "--data", world.data, "--max-new-tokens", "4").exit_code == 0
    report = mmcot("-q", "report", run, "--data", world.data, "--out", tmp_path / "r.html")
    assert report.exit_code == 0, report.stderr  # reading the log (training curves) leaves the torn line out
    res = _train(world, run, "--epochs", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_a_bad_complete_metrics_line_is_still_an_error(world, tmp_path):
    run = tmp_path / "run"
    assert _train(world, run, "--epochs", "1").exit_code == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("{broken\n" + "\n".join(lines) + "\n")
    assert_one_error(_train(world, run, "--epochs", "2", "--resume"), 1, "metrics.jsonl:1", "invalid JSON")


# --------------------------------------------------------------------------- debris of every writer


def _debris(folder: Path, *names: str, folder_names: tuple[str, ...] = ()) -> list[Path]:
    made = []
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("partial")
        made.append(folder / name)
    for name in folder_names:
        (folder / name).mkdir(parents=True)
        (folder / name / "part").write_text("partial")
        made.append(folder / name)
    return made


@pytest.mark.parametrize("case", ["prepare_new_folder", "prepare_jsonl", "extract", "extract_shard",
                                  "import_features", "train_resume", "generate", "import_run", "demo_generate_only",
                                  "report", "rationales", "score_export_aokvqa"])
def test_every_writer_removes_a_killed_runs_debris(world, tmp_path, case):
    from t5_layouts import make_t5_dir

    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    keep = tmp_path / ".r.html.mine.tmp"  # not what an atomic write of r.html leaves (8 random characters): stays
    keep.write_text("mine")
    preds = predictions(world, inputs / "preds.jsonl")
    ext = ["-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--workers", "0",
           "--chunk-size", "8", "--out"]
    if case == "prepare_new_folder":  # the case: the rerun exited 2
        made = _debris(out, folder_names=(".staged.k3j_x9a2.tmp",))
        (out / ".staged.k3j_x9a2.tmp" / ".mmcot-output.json").write_text('{"command": "prepare"}')
        args = ["-q", "prepare", world.bench, "--out", out]
    elif case == "prepare_jsonl":
        made = _debris(out, ".manifest.json.ab12cd34.tmp", folder_names=(".staged.00000000.tmp",))
        args = ["-q", "prepare", jsonl_source(inputs / "src"), "--out", out]
    elif case in ("extract", "extract_shard"):
        out = world.copy("feats", tmp_path)
        (out / "chunks" / "test-00000.safetensors").unlink()  # the chunk being written when it was killed
        made = _debris(out, "chunks/.test-00000.safetensors.q8w7e6r5.tmp", ".index.json.q8w7e6r5.tmp")
        if case == "extract_shard":  # a shard job removes the debris of its own chunks
            made = made[:1]
        args = [*ext, out] + (["--shard", "0/1"] if case == "extract_shard" else [])
    elif case == "import_features":
        npy, name_map = release_features(world, inputs / "release")
        made = _debris(out, "chunks/.test-00000.safetensors.a1b2c3d4.tmp", ".mmcot-lock")
        (out / ".mmcot-output.json").write_text('{"command": "import-features"}')  # marked before the chunks
        args = ["-q", "import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", out]
    elif case == "train_resume":
        out = world.copy("run", tmp_path)
        made = _debris(out, ".run_config.json.zzzzzzzz.tmp", folder_names=(
            "checkpoints/.step-00000009.tmp", ".model.abcdefgh.tmp", ".model.old"))
        args = ["-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", out, "--features", world.feats, "--epochs", "2", "--batch-size", "8",
                "--limit-train", "8", "--val-split", "none", "--save-every", "1", "--resume", *TINY_TEXT]
    elif case == "generate":
        out = world.copy("run", tmp_path)
        made = _debris(out, ".preds-test.jsonl.x1y2z3w4.tmp")
        args = ["-q", "generate", "--run", out, "--data", world.data, "--device", "cpu", "--max-new-tokens", "4"]
    elif case == "import_run":
        made = _debris(tmp_path, folder_names=(".out.4f5g6h7j.tmp", ".out.old"))
        args = ["-q", "import-run", make_t5_dir(inputs / "ckpt", tokenizer="spiece", weights="bin", tied=True),
                "--stage", "answer", "--out", out]
    elif case == "demo_generate_only":
        made = _debris(tmp_path, folder_names=(".out.9z8y7x6w.tmp",))
        args = ["-q", "demo", "--generate-only", "--tiny", "--out", out]
    elif case == "report":
        made = _debris(tmp_path, ".r.html.abcd_123.tmp")
        args = ["-q", "report", preds, "--data", world.data, "--out", tmp_path / "r.html"]
    elif case == "rationales":
        made = _debris(tmp_path, ".s.jsonl.abcd_123.tmp")
        args = ["-q", "rationales", "import", preds, "--data", world.data, "--split", "test", "--out",
                tmp_path / "s.jsonl"]
    else:
        data = inputs / "aok-data"
        assert mmcot("-q", "prepare", aokvqa_source(inputs / "aok"), "--out", data).exit_code == 0
        apreds = inputs / "apreds.jsonl"
        apreds.write_text("".join(json.dumps({"qid": f"a{i}", "prediction": "The answer is (B)."}) + "\n"
                                  for i in (4, 5)))
        made = _debris(tmp_path, ".a.json.abcd_123.tmp")
        args = ["-q", "score", apreds, "--data", data, "--split", "val", "--export-aokvqa", tmp_path / "a.json"]
    res = mmcot(*args)
    assert res.exit_code == 0, res.stderr
    assert [p for p in made if p.exists()] == [] and keep.read_text() == "mine"
    assert not list(tmp_path.rglob("*.mmcot-lock*"))


# --------------------------------------------------------------------------- SIGTERM in every command


def _sigterm_self(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("case", ["prepare", "extract", "extract_shard", "extract_merge", "import_features", "train",
                                  "generate", "import_run", "demo", "demo_ablation", "report", "rationales",
                                  "score_export_aokvqa", "score", "compare", "prompts"])
def test_sigterm_exits_143_with_everything_released(world, tmp_path, monkeypatch, case):
    """SIGTERM arrives right after the command took its output (or, for commands that write nothing, while it
    works): one line, exit 143, its lock released, no folder or temporary file left behind."""
    from t5_layouts import make_t5_dir

    import mmcot_cli.features.extract as extract
    import mmcot_cli.outputs as outputs

    out = tmp_path / "out"
    preds = predictions(world, tmp_path / "preds.jsonl")
    store = world.copy("feats", tmp_path)
    ext = ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--workers", "0", "--out"]
    cases = {
        "prepare": ["prepare", world.bench, "--out", out],
        "extract": [*ext, out],
        "extract_shard": [*ext, out, "--shard", "0/2"],
        "extract_merge": ["extract", "--merge", store],
        "import_features": None,
        "train": ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                  "t5-scratch", "--out", out, "--epochs", "1", *TINY_TEXT],
        "generate": ["generate", "--run", world.run, "--data", world.data, "--out", out / "p.jsonl"],
        "import_run": ["import-run", None, "--stage", "answer", "--out", out],
        "demo": ["demo", "--tiny", "--out", out],
        "demo_ablation": ["demo", "--ablation", "--tiny", "--out", out],
        "report": ["report", preds, "--data", world.data, "--out", out / "r.html"],
        "rationales": ["rationales", "filter", preds, "--data", world.data, "--split", "test", "--out", out / "s"],
        "score_export_aokvqa": None,
        "score": ["score", preds, "--data", world.data],
        "compare": ["compare", preds, preds, "--data", world.data],
        "prompts": ["prompts", world.data],
    }
    args = cases[case]
    if case == "import_features":
        npy, name_map = release_features(world, tmp_path / "release")
        args = ["import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", out]
    if case == "import_run":
        args[1] = make_t5_dir(tmp_path / "ckpt", tokenizer="spiece", weights="bin", tied=True)
    if case == "score_export_aokvqa":
        data = tmp_path / "aok-data"
        assert mmcot("-q", "prepare", aokvqa_source(tmp_path / "aok"), "--out", data).exit_code == 0
        args = ["score", preds, "--data", data, "--split", "val", "--export-aokvqa", out / "a.json"]
    for module, name in ((outputs, "_sweep"), (outputs, "remove_debris_of"), (extract, "remove_debris_of")):
        monkeypatch.setattr(module, name, _sigterm_self)  # every writer, right after it took its output
    if case in ("score", "compare", "prompts"):  # they write nothing: the signal comes while they read
        import mmcot_cli.cli.prepare as cli_prepare
        import mmcot_cli.cli.report as cli_report
        import mmcot_cli.cli.score as cli_score

        target = {"score": (cli_score, "score_data"), "compare": (cli_report, "compare"),
                  "prompts": (cli_prepare, "load_records")}[case]
        monkeypatch.setattr(*target, _sigterm_self)
    before = sorted(p for p in tmp_path.rglob("*"))
    res = mmcot(*args)
    assert res.exit_code == 143, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1] == "terminated" and "Traceback" not in res.stderr, res.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no lock, folder or temporary file left


def _sighup_self(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGHUP)


@pytest.mark.parametrize("case", ["generate", "score", "report"])
def test_sighup_ends_a_command_as_sigterm_does(world, tmp_path, monkeypatch, case):
    """SIGHUP (the terminal or ssh session gone) during generate, score or report: "terminated", exit 143, every
    cleanup run (it used to end the process outright: no line, exit -1, temporary files left)."""
    import mmcot_cli.cli.score as cli_score
    import mmcot_cli.outputs as outputs

    out = tmp_path / "out"
    preds = predictions(world, tmp_path / "preds.jsonl")
    args = {"generate": ["generate", "--run", world.run, "--data", world.data, "--out", out / "p.jsonl"],
            "score": ["score", preds, "--data", world.data],
            "report": ["report", preds, "--data", world.data, "--out", out / "r.html"]}[case]
    for module, name in ((outputs, "_sweep"), (outputs, "remove_debris_of"), (cli_score, "score_data")):
        monkeypatch.setattr(module, name, _sighup_self)
    before = sorted(p for p in tmp_path.rglob("*"))
    res = mmcot(*args)
    assert res.exit_code == 143 and res.stderr.strip().splitlines()[-1] == "terminated", res.stderr
    assert "Traceback" not in res.stderr and sorted(p for p in tmp_path.rglob("*")) == before


def test_ctrl_c_still_exits_130(world, monkeypatch):
    import mmcot_cli.cli.prepare as cli_prepare

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_prepare, "load_records", interrupt)
    res = mmcot("prompts", world.data)
    assert res.exit_code == 130 and res.stderr.strip() == "interrupted"
