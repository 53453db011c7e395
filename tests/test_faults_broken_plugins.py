"""Fault class 5 (issue 17): plugins that misbehave. A third-party plugin that raises on import, lacks a
dependency, names an unknown hook, whose hook raises or registers something that is not a backbone is skipped with
one warning line naming it; everything else keeps working and `mmcot backbones` lists it with its reason. A name
registered twice keeps the built-in (docs/PLUGINS.md). What a backbone's build/encode return is checked at the
boundary (extract, ask, train): one line naming the plugin, never a traceback."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest
from faultkit import (  # noqa: F401
    TINY_TEXT,
    assert_one_error,
    mmcot,
    mmcot_subprocess,
    release_features,
    world,
)

from mmcot_cli.registry import manager as plugins

HEAD = "from mmcot_cli.registry.hookspecs import TextBackbone, VisionBackbone, hookimpl\n"
SOURCES = {
    "raises_on_import": "raise RuntimeError('boom at import time')\n",
    "missing_dependency": "import mmcot_no_such_dependency  # noqa\n",
    "misspelled_hook": HEAD + "@hookimpl\ndef register_vision_backbone(register):\n    pass\n",
    "hook_raises": HEAD + "@hookimpl\ndef register_vision_backbones(register):\n    raise KeyError('oops')\n",
    "not_a_backbone": HEAD + "@hookimpl\ndef register_vision_backbones(register):\n    register('patches2')\n",
    "duplicate": HEAD + textwrap.dedent("""
        @hookimpl
        def register_vision_backbones(register):
            register(VisionBackbone(name="patches", feature_shape=(1, 3), default_weights="", weight_free=True,
                                    build=lambda options: None, description="an impostor"))
            register(VisionBackbone(name="other-ok", feature_shape=(1, 3), default_weights="", weight_free=True,
                                    build=lambda options: None))
        """),
    # backbones whose build/encode misbehave; preprocess is the built-in patches one (49 x 192 features)
    "misbehaving": HEAD + textwrap.dedent("""
        import torch
        from mmcot_plugins.patches import PatchEncoder

        class Encoder(PatchEncoder):
            def __init__(self, mode):
                super().__init__()
                self.mode = mode

            def encode(self, pixels):
                out = super().encode(pixels)
                if self.mode == "list":
                    return [row for row in out]
                if self.mode == "raises":
                    raise IndexError("index 7 is out of bounds")
                if self.mode == "nan":
                    return out * float("nan")
                if self.mode == "int":
                    return out.long()
                if self.mode == "batch":
                    return out[:1].repeat(len(out) + 1, 1, 1)
                return out

        def build_raising(options):
            raise ZeroDivisionError("division by zero in the builder")

        @hookimpl
        def register_vision_backbones(register):
            for mode in ("list", "raises", "nan", "int", "batch"):
                register(VisionBackbone(name=f"enc-{mode}", feature_shape=(49, 192), default_weights="",
                                        weight_free=True, build=lambda options, mode=mode: Encoder(mode)))
            register(VisionBackbone(name="build-raises", feature_shape=(49, 192), default_weights="",
                                    weight_free=True, build=build_raising))

        @hookimpl
        def register_text_backbones(register):
            register(TextBackbone(name="text-build-raises", weights="", build=build_raising))
            register(TextBackbone(name="text-build-none", weights="", build=lambda options: None))
        """),
}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """install(*names): those plugin modules on sys.path and in the `mmcot` entry-point list (as
    importlib.metadata would list them), the plugin manager rebuilt."""
    site = tmp_path / "site"
    site.mkdir()
    loaded = []

    def install(*names):
        for name in names:
            (site / f"mmcot_t17_{name}.py").write_text(SOURCES[name])
            loaded.append(f"mmcot_t17_{name}")
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        entry_points = [EntryPoint(name=name, value=f"mmcot_t17_{name}", group="mmcot") for name in names]
        monkeypatch.setattr(plugins, "third_party_entry_points", lambda: sorted(entry_points, key=lambda e: e.name))
        plugins._reset_for_tests()

    yield install
    plugins._reset_for_tests()
    for module in loaded:
        sys.modules.pop(module, None)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: plugin ")]


BROKEN = {"raises_on_import": "RuntimeError: boom at import time",
          "missing_dependency": "No module named 'mmcot_no_such_dependency'",
          "misspelled_hook": "unknown hook 'register_vision_backbone'",
          "hook_raises": "KeyError",
          "not_a_backbone": "registered a str, expected a VisionBackbone"}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_plugin_is_one_warning_and_listed(installed, name):
    installed(name)
    res = mmcot("backbones", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr
    lines = _warnings(res.stderr)
    assert len(lines) == 1 and f"plugin {name} (mmcot_t17_{name})" in lines[0] and BROKEN[name] in lines[0]
    summary = json.loads(res.stdout)
    assert {"patches", "resnet"} <= {b["name"] for b in summary["vision"]}  # the rest keeps working
    problems = {p["plugin"]: p for p in summary["plugin_problems"]}
    assert BROKEN[name] in problems[name]["reason"] and problems[name]["source"] == f"mmcot_t17_{name}"
    res = mmcot("backbones")
    assert res.exit_code == 0 and name in res.stdout and "Plugins with problems" in res.stdout


def test_broken_plugins_do_not_block_extract_train_or_import_features(installed, world, tmp_path):
    installed(*BROKEN)
    res = mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0")
    assert res.exit_code == 0, res.stderr
    assert len(_warnings(res.stderr)) == len(BROKEN) and "Traceback" not in res.stderr
    plugins._reset_for_tests()  # each command is a fresh process: it warns again
    npy, name_map = release_features(world, tmp_path / "release")
    res = mmcot("-q", "import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", tmp_path / "imported")
    assert res.exit_code == 0, res.stderr
    assert len(_warnings(res.stderr)) == len(BROKEN) and "Traceback" not in res.stderr
    plugins._reset_for_tests()
    res = mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", tmp_path / "run", "--epochs", "1", "--batch-size", "8", "--limit-train", "8",
                "--val-split", "none", *TINY_TEXT)
    assert res.exit_code == 0, res.stderr
    # the plugins that cannot load; the vision-hook failures do not concern a text backbone
    assert len(_warnings(res.stderr)) == 3 and "Traceback" not in res.stderr


def test_a_name_registered_twice_keeps_the_builtin(installed, world, tmp_path):
    installed("duplicate")
    res = mmcot("backbones", "--json")
    assert res.exit_code == 0
    summary = json.loads(res.stdout)
    vision = {b["name"]: b for b in summary["vision"]}
    assert vision["patches"]["plugin"] == "patches" and vision["patches"]["feature_shape"] == [49, 192]
    assert vision["other-ok"]["plugin"] == "duplicate"  # its other backbone is used
    (line,) = _warnings(res.stderr)
    assert "plugin duplicate" in line and "'patches'" in line and "mmcot_plugins.patches" in line
    assert "built-in plugins first" in summary["precedence"]
    assert "built-in plugins first" in " ".join(mmcot("backbones").stdout.split())
    res = mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["shape"] == [49, 192]


@pytest.mark.parametrize("backbone,needles", [
    ("enc-list", ["encode returned a list", "expected a tensor"]),
    ("enc-raises", ["encode failed", "IndexError", "index 7"]),
    ("enc-nan", ["non-finite", "qid "]),
    ("enc-int", ["torch.int64", "floating point"]),
    ("enc-batch", ["produced features", "for a batch of"]),
    ("build-raises", ["build failed", "ZeroDivisionError"]),
])
def test_extract_checks_plugin_results(installed, world, tmp_path, backbone, needles):
    installed("misbehaving")
    res = mmcot("extract", "-b", backbone, "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0")
    assert_one_error(res, 1, f"backbone {backbone} (plugin misbehaving)", *needles)
    assert not list((tmp_path / "f").glob("chunks/*.safetensors")) if (tmp_path / "f").exists() else True


@pytest.mark.parametrize("backbone,needles", [
    ("enc-list", ["encode returned a list"]), ("enc-raises", ["encode failed", "IndexError"]),
    ("enc-nan", ["non-finite", "--image"]), ("build-raises", ["build failed", "ZeroDivisionError"]),
])
def test_ask_checks_plugin_results(installed, world, tmp_path, backbone, needles):
    installed("misbehaving")
    run = world.copy("run", tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    config.update(vision_backbone=backbone, features_dir=None)
    (run / "run_config.json").write_text(json.dumps(config))
    image = next(p for r in (world.data / "test.jsonl").read_text().split("\n") if r.strip()
                 for p in json.loads(r)["image_paths"])
    res = mmcot("ask", "--rationale-run", run, "--answer-run", run, "--question", "Q?", "--choices", "a|b", "--image",
                image, "--device", "cpu")
    assert_one_error(res, 1, f"backbone {backbone} (plugin misbehaving)", *needles)


@pytest.mark.parametrize("backbone,needle", [("text-build-raises", "ZeroDivisionError"),
                                             ("text-build-none", "expected (model, tokenizer)")])
def test_train_checks_a_text_plugins_build(installed, world, tmp_path, backbone, needle):
    installed("misbehaving")
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                backbone, "--out", tmp_path / "run", "--epochs", "1", "--val-split", "none")
    assert_one_error(res, 1, f"backbone {backbone} (plugin misbehaving)", needle)
    assert not (tmp_path / "run" / "model").exists()


def test_installed_broken_plugins_through_real_entry_points(tmp_path):
    """A real pip-installed package whose entry points import-fail, lack a dependency, or take a built-in name:
    `mmcot backbones` in a fresh process names each, and still lists everything else."""
    src = tmp_path / "src"
    (src / "mmcot_t17_pkg").mkdir(parents=True)
    (src / "mmcot_t17_pkg" / "__init__.py").write_text("")
    for name in ("raises_on_import", "missing_dependency", "duplicate"):
        (src / "mmcot_t17_pkg" / f"{name}.py").write_text(SOURCES[name])
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "mmcot-t17-pkg"
        version = "0.0.1"
        [project.entry-points.mmcot]
        a_broken = "mmcot_t17_pkg.raises_on_import"
        b_missing = "mmcot_t17_pkg.missing_dependency"
        c_duplicate = "mmcot_t17_pkg.duplicate"
        [tool.setuptools]
        packages = ["mmcot_t17_pkg"]
        """))
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0 and "setuptools" in proc.stderr:
        pytest.skip("setuptools is needed to build the test package")
    assert proc.returncode == 0, proc.stderr[-2000:]
    shutil.rmtree(src)
    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    proc = mmcot_subprocess("backbones", "--json", env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = _warnings(proc.stderr)
    assert len(lines) == 3, proc.stderr
    assert "plugin a_broken (mmcot_t17_pkg.raises_on_import)" in lines[0] and "boom at import" in lines[0]
    assert "plugin b_missing" in lines[1] and "mmcot_no_such_dependency" in lines[1]
    assert "plugin c_duplicate" in lines[2] and "'patches'" in lines[2]
    summary = json.loads(proc.stdout)
    assert {p["plugin"] for p in summary["plugin_problems"]} == {"a_broken", "b_missing", "c_duplicate"}
    vision = {b["name"]: b["plugin"] for b in summary["vision"]}
    assert vision["patches"] == "patches" and vision["other-ok"] == "c_duplicate"


def test_an_entry_point_named_like_a_builtin_plugin_is_not_loaded(installed, monkeypatch):
    installed("duplicate")
    monkeypatch.setattr(plugins, "third_party_entry_points",
                        lambda: [EntryPoint(name="patches", value="mmcot_t17_duplicate", group="mmcot")])
    plugins._reset_for_tests()
    res = mmcot("backbones", "--json")
    assert res.exit_code == 0
    (line,) = _warnings(res.stderr)
    assert "plugin patches (mmcot_t17_duplicate): not loaded" in line and "mmcot_plugins.patches" in line
    vision = {b["name"]: b for b in json.loads(res.stdout)["vision"]}
    assert vision["patches"]["feature_shape"] == [49, 192] and "other-ok" not in vision
