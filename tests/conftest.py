import os
from pathlib import Path

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny test models run faster on one thread than on contended ones (2-core CI machines).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared reference material beside the repo (../shared), or inside a copy of the tree that carries it (shared/).
SHARED = next((p for p in (REPO_ROOT.parent / "shared", REPO_ROOT / "shared") if p.is_dir()), REPO_ROOT.parent / "shared")
SAMPLE = SHARED / "scienceqa-sample"


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is present; elsewhere they are skipped with the reason."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


def build_record(**fields) -> dict:
    """One DATA_DIR record (docs/FORMATS.md) with every field present; `fields` override the defaults.
    The one record builder of the tests: use the `make_record` fixture, or import it for module-level data."""
    record = {
        "qid": "1", "split": "test", "question": "Which is hot?", "hint": "", "caption": "",
        "choices": ["ice", "fire"], "answer": 1, "lecture": "", "solution": "", "subject": "natural science",
        "grade": "grade3", "topic": "physics", "category": "x", "skill": "y", "task": "closed choice",
        "image": None, "image_paths": [],
    }
    record.update(fields)
    return record


@pytest.fixture
def make_record():
    """`make_record(qid="7", choices=[...], ...)` → a full DATA_DIR record (see build_record)."""
    return build_record


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real ScienceQA sample beside the repo (../shared/scienceqa-sample); skip where absent."""
    if not (SAMPLE / "problems.json").is_file():
        pytest.skip("../shared/scienceqa-sample not present")
    return SAMPLE


@pytest.fixture
def cli():
    """Invoke `mmcot ...` in-process; returns the click Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    runner = CliRunner()

    def invoke(*args, **kwargs):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke

