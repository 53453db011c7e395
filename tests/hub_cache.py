"""A Hugging Face cache laid out as huggingface_hub writes it (models--org--name/refs/<ref> holding the commit,
snapshots/<commit>/<path> links into blobs/<sha256>), for offline tests of hub ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate(cache: Path, repo_id: str, files: dict[str, Path], commit: str = COMMIT, refs=("main",)) -> Path:
    """Put `files` ({path in repo: local file}) into the cache as snapshot `commit`."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    for name, src in files.items():
        data = src.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
    return storage
