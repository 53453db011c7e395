"""RunMeta: the one record of how a run was trained (RUN_DIR/run_config.json + the model's copy)."""

import json

import pytest

from mmcot_cli.data.records import parse_splits
from mmcot_cli.errors import DataError, UnknownNameError
from mmcot_cli.runs.meta import RUN_META_VERSION, RunMeta


def test_save_load_round_trip_and_model_copy(tmp_path):
    meta = RunMeta(stage="answer", prompt_format="QCMG-A", text_backbone="t5-scratch", feature_shape=(49, 192),
                   vision_backbone="patches", features_dir="/f", rationales={"source": "/runs/r", "train_on": "gold"})
    meta.save(tmp_path)
    saved = json.loads((tmp_path / "run_config.json").read_text())
    assert saved["version"] == RUN_META_VERSION and saved["feature_shape"] == [49, 192]
    loaded = RunMeta.load(tmp_path)
    assert loaded == meta and loaded.max_output_len == 64  # the answer stage preset
    assert loaded.needs_rationale and loaded.answers and loaded.rationales_source == "/runs/r"
    # Without run_config.json (a model directory on its own) the model's copy is read.
    alone = RunMeta.for_run(tmp_path / "elsewhere", {**meta.model_meta(), "image_shape": [49, 192]})
    assert alone.prompt_format == "QCMG-A" and alone.feature_shape == [49, 192] and alone.features_dir is None


def test_run_config_written_before_runmeta_still_loads(tmp_path):
    legacy = {"train_config": {"features": "/f", "seed": 3}, "stage": "rationale", "prompt_format": "QCM-E",
              "text_backbone": "t5-scratch", "vision_backbone": "patches", "feature_shape": [49, 192],
              "features_dir": "/f", "use_caption": False, "max_input_len": 96, "max_output_len": 32, "seed": 3,
              "rationales": None, "world_size": 1, "mixed_precision": "no", "train_examples": 6,
              "val_examples": 4, "created_by": "mmcot train"}
    (tmp_path / "run_config.json").write_text(json.dumps(legacy))
    meta = RunMeta.for_run(tmp_path, {"vision_variant": "", "vision_weights": "random-init"})
    assert (meta.stage, meta.max_input_len, meta.max_output_len, meta.features_dir) == ("rationale", 96, 32, "/f")
    assert meta.vision_weights == "random-init" and not meta.answers


def test_bad_run_metadata_is_one_line_error(tmp_path):
    (tmp_path / "run_config.json").write_text(json.dumps({"version": RUN_META_VERSION + 1, "prompt_format": "QCM-E"}))
    with pytest.raises(DataError, match="newer than this mmcot reads"):
        RunMeta.load(tmp_path)
    (tmp_path / "run_config.json").write_text(json.dumps({"stage": "answer"}))
    with pytest.raises(DataError, match="records no prompt_format"):
        RunMeta.load(tmp_path)
    with pytest.raises(UnknownNameError):
        RunMeta(stage="answer", prompt_format="QCM-X", text_backbone="t5-scratch")


def test_one_split_parser_drops_repeats_and_keeps_order():
    assert parse_splits(" val,train , val,,test,train") == ("val", "train", "test")
