"""Fault class 5 (issue 10): every command that takes --device parses it with the one parser
(mmcot_cli.validate.parse_device): an unknown device or a missing GPU is the same one line, exit 2."""

from __future__ import annotations

import pytest
from faultkit import assert_one_error, mmcot, world  # noqa: F401 (fixture)


def _commands(world, tmp_path, device):
    return {
        "extract": ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                    "--workers", "0", "--device", device],
        "generate": ["generate", "--run", world.run, "--data", world.data, "--out", tmp_path / "p.jsonl",
                     "--device", device],
        "ask": ["ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?",
                "--choices", "a|b", "--device", device],
    }


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0", "cpu:0:1"])
def test_unknown_device_same_line_everywhere(world, tmp_path, device):
    lines = set()
    for args in _commands(world, tmp_path, device).values():
        lines.add(assert_one_error(mmcot(*args), 2, f"invalid --device {device!r}", "cuda:N"))
    assert len(lines) == 1  # the very same message from every command
    assert not any(tmp_path.iterdir())


def test_cuda_without_gpu_same_line_everywhere(world, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    lines = {assert_one_error(mmcot(*args), 2, "--device cuda:1", "no CUDA GPU")
             for args in _commands(world, tmp_path, "cuda:1").values()}
    assert len(lines) == 1
    assert not any(tmp_path.iterdir())


def test_parse_device():
    from mmcot_cli.validate import parse_device

    assert parse_device("CPU") == "cpu"
    assert parse_device("auto") in ("cpu", "cuda")
