"""Fast start and the public API: the CLI and `import mmcot_cli` load no torch/transformers/timm/open_clip (they
come in only inside the commands that build a model); every name `mmcot_cli` exports resolves to its module's.

Import checks run in a fresh interpreter (this test process has torch loaded already). Timings and RSS are a
benchmark (benchmarks/bench_startup.py), not asserted here.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import mmcot_cli

HEAVY = ("torch", "transformers", "timm", "open_clip")


SPY = """
import sys, traceback
class _Spy:  # remembers which mmcot module line first imported each heavy package
    via = {}
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in _Spy.via:
            frames = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack() if "mmcot" in f.filename]
            _Spy.via[name] = frames[-1] if frames else "?"
sys.meta_path.insert(0, _Spy())
"""


def loaded_after(code: str) -> dict[str, str]:
    """Heavy top-level packages in sys.modules after running `code` in a fresh interpreter → the mmcot file:line
    that imported each."""
    probe = (f"HEAVY = {HEAVY!r}\n{SPY}\n{code}\nimport json\n"
             "print(json.dumps({m: _Spy.via.get(m, '?') for m in HEAVY if m in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_torch():
    assert loaded_after("import mmcot_cli.cli") == {}


def test_package_store_plugins_and_backbone_listing_load_no_torch():
    code = ("import mmcot_cli, mmcot_cli.features.store, mmcot_cli.features.extract, mmcot_cli.registry.weights, "
            "mmcot_cli.io, mmcot_cli.progress\n"
            "from mmcot_cli import open_store, hookimpl, VisionBackbone\n"
            "from mmcot_cli.registry import manager as plugins\n"
            "assert {'patches', 'vit', 'resnet', 'detr', 'clip'} <= set(plugins.vision_backbones())\n"
            "plugins.text_backbones()")
    assert loaded_after(code) == {}


def test_public_api_names_are_the_modules_own():
    for name, (module, attr) in mmcot_cli._EXPORTS.items():
        assert getattr(mmcot_cli, name) is getattr(importlib.import_module(module), attr), name
    assert set(mmcot_cli.__all__) == {"__version__", *mmcot_cli._EXPORTS}
    try:
        mmcot_cli.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def test_extract_help_shows_the_store_default_chunk_size(cli):
    # `mmcot extract --help` must not import the store (numpy); the settings module holds the default it shows
    from mmcot_cli.features import settings, store

    assert store.DEFAULT_CHUNK_SIZE is settings.DEFAULT_CHUNK_SIZE
    assert set(store.DTYPES) == set(settings.STORE_DTYPES)
    res = cli("extract", "--help", terminal_width=250)
    assert f"[default: {settings.DEFAULT_CHUNK_SIZE}]" in res.stdout
