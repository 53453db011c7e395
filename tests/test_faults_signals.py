"""Fault class 7 (issue 26): signals while DataLoader workers run, as a batch queue sends them. SIGTERM to the whole
process group (`scancel`, `timeout`) is one line and exit 143 in extract and train, never a traceback from a
worker or "worker killed by signal"; after `kill -9` of the command its orphaned workers hold none of its locks,
so an immediate rerun or --resume is accepted. Real processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from faultkit import (
    TINY_TEXT,
    children,  # noqa: F401 (fixture)
    descendants,
    lock_holder,
    start_mmcot,
    wait_for,
    world,  # noqa: F401 (fixture)
)


def _extract(world, store):
    return ["extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--workers", "2",
            "--batch-size", "1", "--chunk-size", "4", "--out", store]


def _train(world, run):
    return ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
            "t5-scratch", "--out", run, "--features", world.feats, "--val-split", "none", "--batch-size", "1",
            "--workers", "2", "--epochs", "2", "--save-every", "4", *TINY_TEXT]


def _working(proc, folder, done):
    """The command holds `folder`'s lock, has DataLoader workers and they have delivered work (`done()`)."""
    if proc.poll() is not None:
        return -1
    return lock_holder(folder) == proc.pid and len(descendants(proc.pid)) >= 2 and done()


def _store_written(store):
    return lambda: any(store.rglob("*.safetensors"))


def _run_trained(run):
    return lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("command", ["extract", "train"])
def test_sigterm_to_the_process_group_while_workers_run(world, tmp_path, children, command, sig):
    """SIGHUP (a closed terminal or ssh session, sent to the foreground process group) ends the command as
    SIGTERM does; it used to kill it outright (exit -1, no cleanup) and its workers with tracebacks."""
    out = tmp_path / "out"
    args, done = (_extract(world, out), _store_written(out)) if command == "extract" else \
        (_train(world, out), _run_trained(out))
    proc = start_mmcot(*args)
    children.append(proc)
    assert wait_for(lambda: _working(proc, out, done), what="workers at work") != -1, proc.stderr.read()
    os.killpg(proc.pid, getattr(signal, sig))
    assert proc.wait(timeout=120) == 143
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr and "killed by signal" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.strip()][-1:] == ["error: terminated"] or \
        stderr.strip().endswith("terminated"), stderr


@pytest.mark.parametrize("command", ["extract", "train"])
def test_kill_9_then_an_immediate_rerun_is_not_blocked_by_orphaned_workers(world, tmp_path, children, command):
    """The issue's case: a requeued job right after `kill -9` was refused for 5-7 s ("being written by pid …")
    because the dead job's DataLoader workers had inherited its lock. The workers are frozen here (SIGSTOP) so
    that they cannot notice and exit: the lock must end with the main process alone."""
    out = tmp_path / "out"
    args, done = (_extract(world, out), _store_written(out)) if command == "extract" else \
        (_train(world, out), _run_trained(out))
    proc = start_mmcot(*args)
    children.append(proc)
    assert wait_for(lambda: _working(proc, out, done), what="workers at work") != -1, proc.stderr.read()
    workers = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    try:
        assert any(os.path.exists(f"/proc/{pid}") for pid in workers)  # orphaned, alive, frozen
        rerun = ["-q", *args, *(["--resume"] if command == "train" else [])]
        res = subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, rerun)], capture_output=True,
                             text=True, timeout=300)
    finally:  # the frozen orphans would outlive the test run otherwise
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert "being written" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 0, res.stderr
