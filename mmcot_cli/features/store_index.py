"""Where a feature store's rows are: the qid → (file, row) index, each split's chunks, and the manifest's summary
of them, all derived from the data files' headers (mmcot_cli.features.store_files). A chunk present both as a
chunk file and inside a merged shard resolves to the chunk file (scan order: chunks first). `limit_text` says how
much of its split a split of the store holds (`extract --limit`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mmcot_cli._version import __version__
from mmcot_cli.features.store_files import DataFile


@dataclass(frozen=True)
class ChunkRef:
    """Where one chunk of a split lives: a data file and the chunk's first row in it."""

    split: str
    chunk: int
    file: DataFile
    row: int
    entry: dict  # {split, chunk, qids, bad}

    def read(self) -> np.ndarray:
        return self.file.read_rows(self.row, len(self.entry["qids"]))


def build_index(files: Sequence[DataFile]) -> dict[str, tuple[str, int]]:
    index: dict[str, tuple[str, int]] = {}
    for f in files:
        row = 0
        for entry in f.entries:
            for qid in entry["qids"]:
                index.setdefault(qid, (f.name, row))  # a chunk also in a shard: the chunk is newer
                row += 1
    return index


def chunk_refs(files: Sequence[DataFile]) -> dict[str, dict[int, ChunkRef]]:
    """split → chunk index → where it is; a chunk present twice (chunk + shard) resolves to the chunk file."""
    refs: dict[str, dict[int, ChunkRef]] = {}
    for f in files:
        row = 0
        for entry in f.entries:
            split, chunk = entry["split"], int(entry["chunk"])
            refs.setdefault(split, {}).setdefault(chunk, ChunkRef(split, chunk, f, row, entry))
            row += len(entry["qids"])
    return refs


def summarize(identity: dict, infos: dict[str, dict], files: Sequence[DataFile],
              index: dict[str, tuple[str, int]]) -> dict:
    """The manifest: store identity + per-split progress (chunks done/missing, rows, bad items)."""
    done = chunk_refs(files)
    splits, bad = {}, []
    for split in sorted(set(infos) | set(done)):
        info = dict(infos.get(split, {}))
        chunks = done.get(split, {})
        num_chunks = int(info.get("num_chunks", len(chunks)))
        missing = [i for i in range(num_chunks) if i not in chunks]
        info.update(count=sum(len(c.entry["qids"]) for c in chunks.values()), chunks_done=len(chunks),
                    missing_chunks=missing, complete=not missing)
        splits[split] = info
        for i in sorted(chunks):
            bad.extend({"split": split, **b} for b in chunks[i].entry.get("bad", []))
    return {**identity, "count": len(index), "splits": splits, "bad": bad, "files": len(files),
            "created_by": f"mmcot {__version__}"}


def limit_text(info: dict) -> str:
    """How much of its split a store's split holds: "the first N of its M images (extract --limit N)" or "all
    its images"."""
    if info.get("limit") is None:
        return "all its images"
    of = f" of its {info['images']:,}" if isinstance(info.get("images"), int) else ""
    return f"the first {info['with_image']:,}{of} images (extract --limit {info['limit']})"
