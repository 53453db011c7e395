"""`mmcot env` (what the install is made of) and a broken install as one line in every command (issue 25): a
torchvision built for another torch ("operator torchvision::nms does not exist") and an ImportError inside a
library are simulated with fake packages (and fake install metadata) first on PYTHONPATH in a child process."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from faultkit import assert_one_error, world  # noqa: F401 (fixture)

from mmcot_cli.registry import environment


def test_env_json_and_text(cli):
    res = cli("env", "--json")
    info = json.loads(res.stdout)
    assert res.exit_code == (1 if info["problems"] else 0), res.output
    assert info["problems"] == [], info["problems"]  # this test environment is a working install
    by_name = {p["name"]: p for p in info["packages"]}
    for name in ("torch", "torchvision", "transformers", "tokenizers", "timm", "open_clip_torch", "peft",
                 "accelerate", "datasets"):
        assert by_name[name]["version"] == importlib.metadata.version(name) and by_name[name]["imports"], name
    assert info["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert set(info["cpu"]["features"]) <= set(environment.CPU_FEATURES) and info["cpu"]["model"]
    if "avx2" in open("/proc/cpuinfo").read():
        assert "avx2" in info["cpu"]["features"] and info["cpu"]["torch_capability"]
    assert info["threads"]["cpus"] == os.cpu_count() and info["threads"]["torch_intra_op"] >= 1
    assert isinstance(info["devices"]["cuda_available"], bool) and "mps_available" in info["devices"]
    assert info["huggingface"]["offline"] is True  # conftest sets HF_HUB_OFFLINE=1
    assert {x["name"] for x in info["extras"]} == {"sentence-transformers", "tensorboard", "wandb", "mlflow"}
    text = cli("env")
    assert text.exit_code == 0
    assert re.search(rf"^- torch: +{re.escape(by_name['torch']['version'])}$", text.stdout, re.M), text.stdout
    for needle in ("Libraries:", "Devices:", "- CUDA: ", "CPU:",
                   "- features: ", "Hugging Face:", "- offline: yes", "Optional extras:", "Fit:",
                   "import and fit together"):
        assert needle in text.stdout, needle


def _fake_site(tmp_path, torchvision_requires: str | None = "torch (==2.0.0)", broken: str = "torchvision") -> str:
    """A folder to put first on PYTHONPATH: a package `broken` that fails at import as a mismatched build does,
    with (for torchvision) install metadata requiring `torchvision_requires`."""
    site = tmp_path / "site"
    (site / broken).mkdir(parents=True)
    if broken == "torchvision":
        (site / broken / "__init__.py").write_text(textwrap.dedent('''
            import torch  # the real one
            def _register_meta(name):
                raise RuntimeError(f"operator torchvision::{name} does not exist")
            _register_meta("nms")
        '''))
        dist = site / "torchvision-0.15.2.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.15.2\n"
                                       + (f"Requires-Dist: {torchvision_requires}\n" if torchvision_requires else ""))
    else:
        (site / broken / "__init__.py").write_text(
            'raise ImportError("libtorch_cpu.so: undefined symbol: _ZN3c105ErrorC2E", name="torch._C")\n')
    return str(site)


def _mmcot(site: str, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([site, os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def test_fit_problems_name_a_torchvision_built_for_another_torch(tmp_path, monkeypatch):
    site = _fake_site(tmp_path)
    monkeypatch.syspath_prepend(site)
    torch_version = importlib.metadata.version("torch")
    assert importlib.metadata.version("torchvision") == "0.15.2"
    assert f"torchvision 0.15.2 needs torch==2.0.0, but torch {torch_version} is installed" in (
        environment.fit_problems())


def test_install_problem_tells_install_errors_from_bugs():
    def raised(fn):
        try:
            fn()
        except Exception as e:
            return e

    def bug():
        raise RuntimeError("shape mismatch in our code")

    assert environment.install_problem(raised(bug)) is None
    nms = RuntimeError("operator torchvision::nms does not exist")
    line = environment.install_problem(nms)
    assert line.startswith("broken install: importing torchvision failed (RuntimeError: operator torchvision::nms")
    assert "`mmcot env`" in line
    lib = ImportError("cannot import name 'Foo' from 'transformers'", name="transformers")
    assert "importing transformers failed" in environment.install_problem(lib)
    assert environment.install_problem(ImportError("x", name="mmcot_cli.nothing")) is None  # our own: a bug
    assert environment.install_problem(KeyboardInterrupt()) is None


def _world_commands(world, tmp_path):  # noqa: F811
    """One invocation of each command that computes with torch, on the tiny world's inputs."""
    return {
        "train": ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                  "t5-scratch", "--out", tmp_path / "run", "--epochs", "1", "--limit-train", "4", "--val-split",
                  "none"],
        "generate": ["generate", "--run", world.run, "--data", world.data, "--limit", "2", "--out",
                     tmp_path / "p.jsonl"],
        "extract": ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                    "--workers", "0"],
        "ask": ["ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Which?",
                "--choices", "a|b"],
        "demo": ["demo", "--tiny", "--out", tmp_path / "demo"],
    }


@pytest.mark.slow
def test_a_broken_torch_is_one_line_in_every_command(world, tmp_path):  # noqa: F811
    """torch itself fails to import (an ImportError from its compiled core): every command that computes says so
    in one line with exit 1, naming torch and `mmcot env`; commands that need no torch still work."""
    site = _fake_site(tmp_path, broken="torch")
    for name, args in _world_commands(world, tmp_path).items():
        line = assert_one_error(_mmcot(site, *args), 1, "broken install: importing torch failed", "undefined symbol",
                                "mmcot env")
        assert "torch " in line, (name, line)
    assert _mmcot(site, "score", "--help").returncode == 0
    res = _mmcot(site, "env", "--json")
    info = json.loads(res.stdout)
    assert res.returncode == 1 and any(p.startswith("torch ") and "does not import" in p for p in info["problems"])


@pytest.mark.slow
def test_a_torchvision_built_for_another_torch_is_one_line(world, tmp_path):  # noqa: F811
    """torchvision's compiled operators missing (`operator torchvision::nms does not exist`): one line naming the
    mismatch from its install metadata, in the commands that import it, and `mmcot env` lists it."""
    site = _fake_site(tmp_path)
    torch_version = importlib.metadata.version("torch")
    needle = f"torchvision 0.15.2 needs torch==2.0.0, but torch {torch_version} is installed"
    res = _mmcot(site, "env", "--json")
    info = json.loads(res.stdout)
    assert res.returncode == 1 and needle in info["problems"]
    tv = next(p for p in info["packages"] if p["name"] == "torchvision")
    assert not tv["imports"] and "operator torchvision::nms does not exist" in tv["error"]
    text = _mmcot(site, "env")
    assert "IMPORT FAILS: RuntimeError: operator torchvision::nms does not exist" in text.stdout
    assert f"- PROBLEM: {needle}" in text.stdout
    # a vision backbone built on timm imports torchvision; the train/generate/demo route of a real install does
    # through transformers (which the tiny t5-scratch models may not touch)
    res = _mmcot(site, "extract", "-b", "vit", "--random-init", "--variant", "vit_base_patch16_224", "--data",
                 world.data, "--split", "test", "--out", tmp_path / "f", "--workers", "0")
    assert_one_error(res, 1, "broken install: importing torchvision failed",
                     "operator torchvision::nms does not exist", needle, "mmcot env")
