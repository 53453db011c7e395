"""Packaging truth: the wheel as users get it, and the source tree run without `pip install`.

`test_wheel_smoke` builds the wheel, installs it (non-editable, no source tree on the path) into a fresh virtual
environment whose dependencies come from this environment (`--system-site-packages`), and runs every command
from it, from a folder outside the checkout: prepare (ScienceQA sample, JSONL, A-OKVQA), prompts, backbones,
extract, train, generate, ask, score, report, compare, rationales, import-features and import-run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import SHARED
from own_data_fixtures import write_aokvqa, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = SHARED / "scienceqa-sample"
REFERENCE = SHARED / "reference-checkpoint"
TINY = ["--text-model", "t5-scratch", "--epochs", "1", "--batch-size", "4", "--lr", "3e-3", "--eval-every", "0",
        "--text-option", "d_model=32", "--text-option", "layers=1", "--text-option", "heads=2",
        "--text-option", "vocab_size=400", "--limit-train", "12"]


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1", **extra}


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """A venv holding only the built wheel of mmcot (its dependencies from this environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: a build/ folder left in the checkout would put stale modules into the wheel.
    source = tmp / "source"
    top_level_junk = {".git", "build", "dist", ".whl", ".gl", "demo-out", "ablation-out", "runs", ".pytest_cache"}

    def ignore(folder, names):
        here = Path(folder).resolve() == ROOT
        return [n for n in names if n == "__pycache__" or n.endswith(".egg-info") or (here and n in top_level_junk)]

    shutil.copytree(ROOT, source, ignore=ignore)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, cwd=tmp,
                           env=_clean_env())
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp / "dist").glob("mmcot-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    # pip of this interpreter installs into the venv with --prefix-free --target-free: use the venv's python
    # --ignore-installed: the mmcot visible through the system site-packages (an editable install of a checkout)
    # must not count as "already satisfied"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "--ignore-installed", "-q", str(wheel)], capture_output=True, text=True,
                             cwd=tmp, env=_clean_env())
    assert install.returncode == 0, install.stderr[-3000:]
    return env_dir


def _meta_path_without_editable() -> str:
    # A source checkout installed with `pip install -e .` maps mmcot_cli/mmcot_plugins through a finder on
    # sys.meta_path; these probes drop it so they see only what they are meant to see.
    return ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
            "if not type(f).__module__.startswith('__editable__')]; ")


def test_wheel_holds_every_subpackage_and_the_builtin_plugins(wheel_env):
    python = wheel_env / "bin" / "python"
    probe = (_meta_path_without_editable() +
             "import json, pkgutil, mmcot_cli, mmcot_plugins; "
             "from mmcot_cli.registry import manager; "
             "print(json.dumps({'cli': mmcot_cli.__file__, 'plugins': mmcot_plugins.__file__, "
             "'subpackages': sorted(m.name for m in pkgutil.iter_modules(mmcot_cli.__path__) if m.ispkg), "
             "'vision': sorted(manager.vision_backbones())}))")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=wheel_env, env=_clean_env())
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout)
    assert found["cli"].startswith(str(wheel_env)) and found["plugins"].startswith(str(wheel_env))
    source_packages = sorted(p.parent.name for p in (ROOT / "mmcot_cli").glob("*/__init__.py"))
    assert found["subpackages"] == source_packages
    assert {"patches", "vit", "detr", "clip", "resnet"} <= set(found["vision"])


def test_source_tree_without_install_has_the_builtin_backbones(tmp_path):
    # A copy of the checkout (no install metadata, no editable finder): `python -m mmcot_cli` on PYTHONPATH.
    shutil.copytree(ROOT / "mmcot_cli", tmp_path / "src" / "mmcot_cli")
    shutil.copytree(ROOT / "plugins", tmp_path / "src" / "plugins")
    code = (_meta_path_without_editable() +
            "import runpy, sys; sys.argv = ['mmcot', 'backbones', '--json']; "
            "runpy.run_module('mmcot_cli', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env=_clean_env(PYTHONPATH=str(tmp_path / "src")))
    assert out.returncode == 0, out.stderr[-3000:]
    listed = json.loads(out.stdout)
    names = {b["name"] for b in listed["vision"]} | {b["name"] for b in listed["text"]}
    assert {"patches", "vit", "t5-scratch", "flan-t5-base"} <= names


@pytest.mark.slow
def test_wheel_smoke(wheel_env, tmp_path):
    if not (SAMPLE / "problems.json").is_file():
        pytest.skip("../shared/scienceqa-sample not present")
    mmcot = wheel_env / "bin" / "mmcot"
    work = tmp_path / "work"
    work.mkdir()

    def run(*args, ok=True):
        res = subprocess.run([str(mmcot), "--quiet", *map(str, args)], capture_output=True, text=True, cwd=work,
                             env=_clean_env(), timeout=600)
        if ok:
            assert res.returncode == 0, f"mmcot {' '.join(map(str, args))}\n{res.stderr[-3000:]}"
        return res

    def run_json(*args):
        return json.loads(run(*args, "--json").stdout)

    # prepare: all three formats
    assert run_json("prepare", SAMPLE, "--out", "data")["splits"]["test"]["count"] > 0
    write_jsonl(SAMPLE, work / "src" / "problems.jsonl", per_split=4)
    run("prepare", work / "src" / "problems.jsonl", "--out", "data-jsonl")
    write_aokvqa(SAMPLE, work / "aok", work / "coco", per_split=4)
    run("prepare", work / "aok", "--images", work / "coco", "--out", "data-aok")
    assert run("prompts", "data", "--format", "QCM-E", "--split", "test").stdout.count("\n") >= 1
    assert "patches" in run("backbones").stdout

    # the pipeline on the sample: extract → train both stages → generate → score → report / compare → ask
    run("extract", "--backbone", "patches", "--data", "data", "--split", "train,val,test", "--out", "feats")
    run("train", "--stage", "rationale", "--data", "data", "--features", "feats", "--out", "run_r",
        "--max-output-len", "12", *TINY)
    run("generate", "--run", "run_r", "--data", "data", "--split", "train,val,test", "--max-new-tokens", "12")
    run("train", "--stage", "answer", "--data", "data", "--features", "feats", "--out", "run_a",
        "--rationales", "run_r", "--max-output-len", "8", *TINY)
    run("generate", "--run", "run_a", "--data", "data", "--split", "test")
    scored = run_json("score", work / "run_a" / "preds-test.jsonl", "--data", "data")
    assert scored["counts"]["acc_average"]["total"] > 0
    (work / "score.json").write_text(json.dumps(scored))
    run("report", "run_a", "--data", "data", "--out", "report.html")
    assert (work / "report.html").read_text().startswith("<!DOCTYPE html>")
    compared = run_json("compare", "score.json", "run_a", "--data", "data")
    assert "acc_average" in [c["key"] for c in compared["columns"]] and len(compared["rows"]) == 2
    image = next(p for p in sorted((SAMPLE / "images").rglob("*.png")))
    asked = run_json("ask", "--rationale-run", "run_r", "--answer-run", "run_a", "--question", "Which is it?",
                     "--choices", "one|two", "--image", image)
    assert "answer" in asked
    run("rationales", "import", work / "run_r" / "preds-train.jsonl", "--data", "data", "--split", "train",
        "--out", "rationales.jsonl")

    # the original's artifacts
    if (REFERENCE / "features.npy").is_file():
        run("import-features", REFERENCE / "features.npy", "--name-map", REFERENCE / "name_map.json", "--data",
            "data", "--backbone", "detr", "--out", "feats-detr")
        run("import-run", REFERENCE / "checkpoint", "--stage", "rationale", "--backbone", "detr", "--out", "run_imp")
        run("generate", "--run", "run_imp", "--data", "data", "--split", "test", "--features", "feats-detr",
            "--max-new-tokens", "8")
