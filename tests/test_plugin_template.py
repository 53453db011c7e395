"""examples/plugin-template: a third-party package that pip installs, loads through the `mmcot` entry point,
shows up in `mmcot backbones`, and extracts features in the real pipeline."""

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmcot_cli.registry import manager as plugins

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "plugin-template"
MODULE = "mmcot_colour_histogram"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """pip install the template into a private target dir (offline: no build isolation, no deps) and put it on
    sys.path, so its entry point is visible to importlib.metadata exactly as after a real install."""
    target = tmp_path / "site"
    source = tmp_path / "src"  # a copy: building writes egg-info/build folders into the source tree
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (target / MODULE / "__init__.py").is_file()
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    plugins._reset_for_tests()  # the next lookup rebuilds the manager and re-reads entry points
    yield target
    plugins._reset_for_tests()
    sys.modules.pop(MODULE, None)


def test_installed_template_is_listed(installed, cli):
    result = cli("backbones", "--json")
    assert result.exit_code == 0
    vision = {b["name"]: b for b in json.loads(result.stdout)["vision"]}
    assert vision["colour-hist"]["feature_shape"] == [16, 64]
    assert vision["colour-hist"]["plugin"] == "colour_histogram"  # the entry-point name
    assert vision["colour-hist"]["variants"] == ["4x4", "2x2", "8x8"]
    assert "patches" in vision  # built-ins still there
    assert sys.modules[MODULE].__file__.startswith(str(installed))


def test_template_encoder_and_extract(installed, cli, tmp_path):
    from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
    from mmcot_cli.demo.synthetic import generate_synthetic
    from mmcot_cli.features.store import open_store
    from mmcot_cli.registry.hookspecs import VisionBuildOptions

    backbone = plugins.get_vision_backbone("colour-hist")
    encoder = backbone.build(VisionBuildOptions())
    red = encoder.preprocess(Image.new("RGB", (50, 30), (250, 5, 5)))
    half = Image.new("RGB", (128, 128), (0, 0, 255))
    half.paste((255, 255, 255), (0, 0, 64, 128))
    feats = encoder.encode(__import__("torch").stack([red, encoder.preprocess(half)]))
    assert tuple(feats.shape) == (2, 16, 64)
    assert feats.sum(-1).allclose(__import__("torch").ones(2, 16))  # each cell a distribution
    assert feats[0, :, 3 * 16].min() == 1.0  # pure red lands in one bin (r=3, g=0, b=0) in every cell
    assert feats[1, 0, 63] == 1.0 and feats[1, 3, 3] == 1.0  # left cells white, right cells blue
    assert tuple(backbone.build(VisionBuildOptions(variant="2x2")).encode(red[None]).shape) == (1, 4, 64)

    # Through the real pipeline: a tiny synthetic benchmark → prepare → `mmcot extract --backbone colour-hist`.
    generate_synthetic(tmp_path / "bench", n_problems=24, seed=1, tasks=("shape_colour",))
    prepare(PrepareConfig(source=tmp_path / "bench", out=tmp_path / "data", splits=("test",)))
    result = cli("--quiet", "extract", "--backbone", "colour-hist", "--data", tmp_path / "data", "--split", "test",
                 "--out", tmp_path / "feats", "--workers", "0", "--json")
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "feats")
    assert tuple(store.feature_shape) == (16, 64) and store.backbone == "colour-hist"
    qid = json.loads((tmp_path / "data" / "test.jsonl").read_text().splitlines()[0])["qid"]
    assert store.has(qid) and abs(float(store.get(qid).sum()) - 16.0) < 1e-2


def test_template_by_register_plugin(cli):
    """Without installing: import the module and register it at runtime (notebooks, tests)."""
    sys.path.insert(0, str(TEMPLATE))
    try:
        module = importlib.import_module(MODULE)
        plugins.register_plugin(module, name="template-in-process")
        try:
            names = [b["name"] for b in json.loads(cli("backbones", "--json").stdout)["vision"]]
            assert "colour-hist" in names
        finally:
            plugins.unregister_plugin(module)
        names = [b["name"] for b in json.loads(cli("backbones", "--json").stdout)["vision"]]
        assert "colour-hist" not in names
    finally:
        sys.path.remove(str(TEMPLATE))
        sys.modules.pop(MODULE, None)
