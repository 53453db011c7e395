"""`import-run` / `import-features` with hub ids (`cooelf/mm-cot/<folder>`, `cooelf/vision_features/<file>`),
offline, against a Hugging Face cache laid out as huggingface_hub writes it (models--org--name/refs/main,
snapshots/<commit>/… as links into blobs/), set through HF_HUB_CACHE: the resolved commit is recorded, and the
offline / unknown / ambiguous cases are one line each."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import SHARED
from hub_cache import COMMIT, populate

FIXTURE = SHARED / "reference-checkpoint"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    if not (FIXTURE / "checkpoint" / "config.json").is_file():
        pytest.skip("../shared/reference-checkpoint not present")
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ckpt = {p.name: p for p in (FIXTURE / "checkpoint").iterdir()}
    files = {f"models/{folder}/{name}": path for folder in ("mm-cot-base-rationale", "mm-cot-base-answer")
             for name, path in ckpt.items()}
    files["README.md"] = FIXTURE / "README.md"
    populate(cache, "cooelf/mm-cot", files)
    populate(cache, "cooelf/vision_features", {"detr.npy": FIXTURE / "features.npy",
                                               "vit.pth": FIXTURE / "features.npy",  # a second feature file
                                               "name_map.json": FIXTURE / "name_map.json"})
    return cache


def test_import_run_from_the_cache_records_the_commit(cli, hub_cache, tmp_path):
    result = cli("import-run", "cooelf/mm-cot/models/mm-cot-base-rationale", "--stage", "rationale", "--backbone",
                 "detr", "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    source = json.loads((tmp_path / "run" / "run_config.json").read_text())["imported_from"]
    assert source["hub"] == {"repo": "cooelf/mm-cot", "path": "models/mm-cot-base-rationale", "revision": "main",
                             "commit": COMMIT}
    expected = hashlib.sha256((FIXTURE / "checkpoint" / "pytorch_model.bin").read_bytes()).hexdigest()
    assert source["files"] == {"pytorch_model.bin": expected}
    assert Path(source["path"]).is_relative_to(hub_cache)  # read from the cache, nothing copied or fetched
    # the same checkpoint as a local folder gives the same model
    local = cli("import-run", FIXTURE / "checkpoint", "--stage", "rationale", "--backbone", "detr",
                "--out", tmp_path / "local", "--json")
    assert json.loads(local.stdout)["parameters"] == json.loads(result.stdout)["parameters"]
    assert (tmp_path / "run" / "model" / "model.safetensors").read_bytes() == \
        (tmp_path / "local" / "model" / "model.safetensors").read_bytes()
    # a pinned commit, and hf:// spelled out
    result = cli("import-run", "hf://cooelf/mm-cot/models/mm-cot-base-answer", "--stage", "answer", "--backbone",
                 "detr", "--revision", COMMIT, "--out", tmp_path / "pinned")
    assert result.exit_code == 0, result.output
    hub = json.loads((tmp_path / "pinned" / "run_config.json").read_text())["imported_from"]["hub"]
    assert (hub["revision"], hub["commit"]) == (COMMIT, COMMIT)


@pytest.mark.parametrize("source, extra, code, message", [
    ("cooelf/mm-cot", [], 2, "ambiguous, it holds 2 checkpoint folders: cooelf/mm-cot/models/mm-cot-base-answer, "
                             "cooelf/mm-cot/models/mm-cot-base-rationale; name one"),
    ("cooelf/mm-cot/models", [], 2, "ambiguous"),
    ("cooelf/mm-cot/mm-cot-base-rationale", [], 1, "no checkpoint folder at 'mm-cot-base-rationale' in "
                                                   "cooelf/mm-cot (it holds: cooelf/mm-cot/models/mm-cot-base-answer"),
    ("cooelf/mm-cot/models/mm-cot-base-rationale", ["--revision", "v2"], 1, "not in the Hugging Face cache"),
    ("cooelf/mm-cot/models/mm-cot-base-rationale", ["--revision", OLD_COMMIT], 1, "not in the Hugging Face cache"),
    ("someone/unknown-repo/ckpt", [], 1, "HF_HUB_OFFLINE"),
    ("./not/here", [], 1, "no such file or directory"),
])
def test_import_run_hub_errors_are_one_line(cli, hub_cache, tmp_path, source, extra, code, message):
    result = cli("import-run", source, "--stage", "rationale", "--backbone", "detr", "--out", tmp_path / "run", *extra)
    assert result.exit_code == code and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_revision_needs_a_hub_id(cli, hub_cache, tmp_path):
    result = cli("import-run", FIXTURE / "checkpoint", "--stage", "rationale", "--backbone", "detr",
                 "--revision", "main", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--revision applies to a hub id" in result.stderr


@pytest.fixture
def data_dir(cli, sample_dir, tmp_path):
    assert cli("--quiet", "prepare", sample_dir, "--out", tmp_path / "data").exit_code == 0
    return tmp_path / "data"


def test_import_features_from_the_cache(cli, hub_cache, data_dir, tmp_path):
    common = ["--data", data_dir, "--split", "test", "--backbone", "detr"]
    result = cli("import-features", "cooelf/vision_features/detr.npy", "--name-map",
                 "cooelf/vision_features/name_map.json", *common, "--out", tmp_path / "feats", "--json")
    assert result.exit_code == 0, result.output
    local = cli("import-features", FIXTURE / "features.npy", "--name-map", FIXTURE / "name_map.json", *common,
                "--out", tmp_path / "local", "--json")
    assert local.exit_code == 0, local.output
    from mmcot_cli.features.store import open_store

    hub_store, local_store = open_store(tmp_path / "feats"), open_store(tmp_path / "local")
    assert sorted(hub_store.qids()) == sorted(local_store.qids()) and len(hub_store) > 0
    assert all((hub_store.get(q) == local_store.get(q)).all() for q in local_store.qids())
    origin = hub_store.manifest["splits"]["test"]["imported_from"]
    assert origin["file_hub"] == {"repo": "cooelf/vision_features", "path": "detr.npy", "revision": "main",
                                  "commit": COMMIT}
    assert origin["name_map_hub"]["path"] == "name_map.json" and hub_store.alpha == "original"
    # the repo alone holds two feature files: ambiguous; a file it lacks: named with what it has
    for source, code, message in (
            ("cooelf/vision_features", 2, "ambiguous, it holds 2 feature files: cooelf/vision_features/detr.npy, "
                                          "cooelf/vision_features/vit.pth"),
            ("cooelf/vision_features/clip.npy", 1, "no feature file at 'clip.npy' in cooelf/vision_features"),
            ("cooelf/no_features/detr.npy", 1, "not in the Hugging Face cache")):
        result = cli("import-features", source, "--name-map", FIXTURE / "name_map.json", *common,
                     "--out", tmp_path / "other")
        assert result.exit_code == code and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "other").exists()


def test_parse_source_rules(tmp_path, monkeypatch):
    from mmcot_cli.errors import DataError
    from mmcot_cli.registry.hub import HubSource, parse_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "here.npy").write_bytes(b"")
    assert parse_source("here.npy") is None  # an existing local path always wins
    assert parse_source("cooelf/vision_features/vit.pth") == HubSource("cooelf/vision_features", "vit.pth", "main")
    assert parse_source("hf://cooelf/mm-cot", "v1") == HubSource("cooelf/mm-cot", "", "v1")
    for text in ("data/name_map.json", "./x/y", "~/nope/x", "just-a-name"):  # data/ exists here: a local typo
        with pytest.raises(DataError, match="no such file or directory"):
            parse_source(text)


def test_online_path_pins_the_commit_and_fetches_only_what_it_needs(hub_cache, tmp_path, monkeypatch):
    """Online (no network here: huggingface_hub's two calls are stood in for): the revision is resolved to a commit
    by repo_info, only the chosen folder's files are requested, at that commit, into the cache; its errors become
    one line."""
    import types

    import huggingface_hub
    from huggingface_hub import errors

    from mmcot_cli.errors import DataError
    from mmcot_cli.registry import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "is_offline", lambda: False)
    files = ["README.md", "models/a/config.json", "models/a/model.safetensors", "models/a/pytorch_model.bin",
             "models/a/tokenizer.json", "models/a/checkpoint-5/config.json", "models/b/config.json"]
    calls = []

    class FakeApi:
        def repo_info(self, repo_id, revision=None):
            calls.append(("repo_info", repo_id, revision))
            if repo_id == "cooelf/missing":
                raise errors.RepositoryNotFoundError("404", response=types.SimpleNamespace(
                    status_code=404, headers={}, request=None))
            return types.SimpleNamespace(sha=COMMIT, siblings=[types.SimpleNamespace(rfilename=f) for f in files])

    def fake_download(repo_id, revision=None, allow_patterns=None, cache_dir=None):
        calls.append(("snapshot_download", repo_id, revision, sorted(allow_patterns), cache_dir))
        return str(tmp_path / "snap")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    from mmcot_cli.model.t5_dirs import checkpoint_files

    folder, info = hub.checkpoint_folder(hub.HubSource("cooelf/new-repo", "models", "v1"), checkpoint_files)
    assert folder == tmp_path / "snap" / "models" / "a"
    assert info == {"repo": "cooelf/new-repo", "path": "models/a", "revision": "v1", "commit": COMMIT}
    # safetensors preferred over the .bin; the checkpoint-5/ copy and the weightless models/b are not fetched
    assert calls == [("repo_info", "cooelf/new-repo", "v1"),
                     ("snapshot_download", "cooelf/new-repo", COMMIT,
                      ["models/a/config.json", "models/a/model.safetensors", "models/a/tokenizer.json"],
                      str(hub_cache))]
    with pytest.raises(DataError, match="no repository cooelf/missing on the Hugging Face Hub"):
        hub.snapshot(hub.HubSource("cooelf/missing", "", "main"))
