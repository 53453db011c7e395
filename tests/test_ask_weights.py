"""`mmcot ask` on an imported run (which records no vision weights): the loader's offline hint names ask's own
flags, and `--vision-weights` reaches the weight resolver."""

import pytest
from conftest import SHARED

from mmcot_cli.model.original_checkpoint import ImportRunConfig, import_run

FIXTURE = SHARED / "reference-checkpoint"
IMAGE = SHARED / "scienceqa-sample" / "images" / "133" / "choice_0.png"


@pytest.fixture(scope="module")
def detr_run(tmp_path_factory):
    if not (FIXTURE / "checkpoint").is_dir() or not IMAGE.is_file():
        pytest.skip("../shared/reference-checkpoint or the ScienceQA sample not present")
    root = tmp_path_factory.mktemp("ask")
    for stage in ("rationale", "answer"):  # both runs are checked for their stage before an image is encoded
        import_run(ImportRunConfig(checkpoint=str(FIXTURE / "checkpoint"), stage=stage, backbone="detr",
                                   out=str(root / stage)))
    return root


def _ask(cli, runs, *extra):
    return cli("ask", "--rationale-run", runs / "rationale", "--answer-run", runs / "answer", "--question", "Q?",
               "--choices", "a|b", "--image", IMAGE, *extra)


def test_offline_hint_names_asks_flags(cli, detr_run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _ask(cli, detr_run)
    assert result.exit_code == 1
    assert "--vision-weights PATH or --random-init-vision" in result.stderr
    assert "--random-init or --weights" not in result.stderr  # extract's flags, which ask does not have


def test_vision_weights_reach_the_resolver(cli, detr_run, tmp_path):
    result = _ask(cli, detr_run, "--vision-weights", tmp_path / "missing")
    assert result.exit_code == 2
    assert f"--vision-weights {tmp_path / 'missing'}: no such file or directory" in result.stderr
