"""The memory-mapped feature store (FEATURES_DIR, see docs/FORMATS.md): its format, reads, and a chunk writer.

Layout of a store directory:

    manifest.json              identity (backbone, variant, weights, feature_shape, dtype, chunk_size, alpha) + summary
    splits/<split>.json        per split: source data dir, record counts, how its images are cut into chunks
    chunks/<split>-NNNNN.safetensors   one finished chunk: tensor "features" (rows, T, D) + metadata (qids, bad)
    shards/<split>-NNNNN.safetensors   after `--merge`: several whole chunks compacted into one file
    index.json                 cache of qid → (file, row); rebuilt from file headers when files changed

Each data file is written to a temp name and renamed, so a killed writer leaves only whole chunks. Every file
names its own qids in its header, so files written by independent processes together form one store without any
shared mutable file. Extraction (batching, sharding, resume, merge) lives in mmcot_cli/features/extract.py.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import mmap
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from mmcot_cli.errors import DataError, MMCoTError, UsageError
from mmcot_cli.features.settings import DEFAULT_CHUNK_SIZE
from mmcot_cli.features.store_files import (
    ST_DTYPES,
    DataFile,
    identity_problem,
    map_budget,
    read_data_file,
    store_rows,
    verify_data_file,
    write_data_file,
)
from mmcot_cli.features.store_index import (  # noqa: F401 (API)
    ChunkRef,
    build_index,
    chunk_refs,
    limit_text,
    summarize,
)
from mmcot_cli.io import make_dir, read_json, write_json
from mmcot_cli.output_guard import mark_output_dir
from mmcot_cli.outputs import LOCK_FILE, hold_lock

FORMAT = "mmcot-features/1"
DTYPES = {"float16": (np.float16, "F16"), "float32": (np.float32, "F32")}
IDENTITY_KEYS = ("format", "backbone", "variant", "weights", "feature_shape", "dtype", "chunk_size", "alpha")
# Identity keys that manifests written before them lack, with what those stores were made with.
LEGACY_IDENTITY = {"alpha": "white"}  # images.to_rgb composited onto white before --alpha existed
METADATA_LOCK = f"{LOCK_FILE}-manifest"
_PAGE = mmap.PAGESIZE


class StoreMismatchError(MMCoTError):
    """Adding features to a store built with another backbone / shape / dtype / records."""


# --------------------------------------------------------------------------------------------------- files


def scan_data_files(root: Path) -> list[DataFile]:
    """Every finished data file, chunks before merged shards (a chunk extracted again after a fixed --skip-bad
    image supersedes its merged copy), each in name order."""
    files = []
    for sub in ("chunks", "shards"):
        d = root / sub
        if d.is_dir():
            for p in sorted(d.glob("*.safetensors")):
                files.append(read_data_file(p, f"{sub}/{p.name}"))
    return files


def split_infos(root: Path) -> dict[str, dict]:
    d = root / "splits"
    return {p.stem: read_json(p) for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


# --------------------------------------------------------------------------------------------------- reading


class FeatureStore:
    """Read features by qid from a store directory; one row is read through a memory map, never a whole file.

    Problems without a row (no image, or a skipped bad image) read as zeros of the declared shape. Picklable
    (DataLoader workers reopen the maps lazily)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / "manifest.json").is_file():
            raise DataError(f"{self.path}: not a feature store (no manifest.json); run `mmcot extract` first")
        identity = read_json(self.path / "manifest.json")
        if identity.get("format") != FORMAT:
            raise DataError(f"{self.path}/manifest.json: unknown feature store format {identity.get('format')!r}")
        self.identity = {k: identity[k] for k in IDENTITY_KEYS if k in identity}
        self.feature_shape: tuple[int, int] = tuple(identity["feature_shape"])  # type: ignore[assignment]
        self.backbone: str = identity["backbone"]
        self.dtype: str = identity["dtype"]
        self.alpha: str = identity.get("alpha", LEGACY_IDENTITY["alpha"])  # how its images' transparency was read
        self.files: list[DataFile] = scan_data_files(self.path)  # shards first, then chunks, in name order
        for f in self.files:
            mismatch = identity_problem(f, self.feature_shape, self.dtype)
            if mismatch:
                raise DataError(mismatch)
        self._by_name = {f.name: f for f in self.files}
        self._index = self._load_index(self.files)
        self.manifest = summarize(self.identity, split_infos(self.path), self.files, self._index)
        self._maps: collections.OrderedDict[str, mmap.mmap] = collections.OrderedDict()  # least recent first
        self._verified: set[str] = set()  # data files whose CRC this process checked
        self._budget = map_budget()

    def _load_index(self, files: list[DataFile]) -> dict[str, tuple[str, int]]:
        cached = self.path / "index.json"
        if cached.is_file():
            try:
                data = read_json(cached)
                if data.get("files") == file_identities(files):
                    return {q: (v[0], int(v[1])) for q, v in data["qids"].items()}
            except (DataError, KeyError, TypeError, IndexError):
                pass  # a stale or damaged cache is rebuilt from the file headers below
        return build_index(files)

    # -- queries
    def has(self, qid: str) -> bool:
        return str(qid) in self._index

    __contains__ = has

    def __len__(self) -> int:
        return len(self._index)

    def qids(self) -> list[str]:
        return list(self._index)

    def file(self, name: str) -> DataFile:
        return self._by_name[name]
    def chunks(self) -> dict[str, list[ChunkRef]]:
        """split → its stored chunks in chunk order (for compaction and inspection)."""
        return {s: [refs[i] for i in sorted(refs)] for s, refs in sorted(chunk_refs(self.files).items())}

    def bad_qids(self) -> set[str]:
        """qids whose image extraction skipped as unreadable (`--skip-bad`): they read as zeros by design."""
        return {str(b.get("qid")) for b in (self.manifest.get("bad") or []) if isinstance(b, dict)}

    def missing(self, records: Iterable[dict]) -> list[str]:
        """qids of records with an image that have no row (bad images skipped at extraction do not count)."""
        bad = self.bad_qids()
        return [str(r["qid"]) for r in records
                if r.get("image_paths") and str(r["qid"]) not in bad and not self.has(str(r["qid"]))]

    def check_coverage(self, records: Sequence[dict], split: str, limit_flag: str = "--limit") -> None:
        """Every record with an image must have a row (unless extraction skipped it as bad): a store extracted
        for other splits (or an unfinished one) would otherwise feed the model zeros without a word. A split
        extracted with `--limit N` is named as such, with how many leading records it serves (`limit_flag`: the
        command's option that takes that many)."""
        missing = self.missing(records)
        info = self.manifest["splits"].get(split) or {}
        if missing and info.get("limit") is not None:
            first = set(missing)
            served = next(i for i, r in enumerate(records) if str(r["qid"]) in first)
            fewer = f"pass {limit_flag} {served} or less, or " if served else ""
            raise DataError(f"{self.path}: no features for qid {missing[0]}: split {split!r} of the store holds "
                            f"{limit_text(info)}, which serve its first {served} records; {fewer}extract the "
                            "split again without --limit into another --out")
        if missing:
            bad = self.bad_qids()
            with_image = [r for r in records if r.get("image_paths") and str(r["qid"]) not in bad]
            raise DataError(f"{self.path}: no features for qid {missing[0]} ({len(missing)} of the {len(with_image)} "
                            f"problems with an image in split {split!r} have none); run `mmcot extract --split "
                            f"{split} --out {self.path}` with the same backbone, or pass the right --features")

    def zeros(self):
        import torch

        return torch.zeros(self.feature_shape, dtype=torch.float32)

    def read(self, qid: str, out: np.ndarray | None = None) -> np.ndarray | None:
        """The stored row as a float32 numpy array (T, D) (written into `out` if given), or None without a row."""
        loc = self._index.get(str(qid))
        if loc is None:
            return None
        f = self._by_name[loc[0]]
        mm = self._maps.get(f.name)
        if mm is not None:
            self._maps.move_to_end(f.name)
        else:
            try:
                if f.name not in self._verified:  # once per file and process: a corrupted chunk is named
                    verify_data_file(f)
                    self._verified.add(f.name)
                while len(self._maps) >= self._budget:  # each map holds a descriptor: `ulimit -n` bounds them
                    self._maps.popitem(last=False)[1].close()
                with open(f.path, "rb") as fh:
                    mm = self._maps[f.name] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except FileNotFoundError:  # compacted by `extract --merge` since this store was opened: read it anew
                self._reopen()
                return self.read(qid, out)
        start = f.data_offset + loc[1] * f.row_bytes
        row = np.frombuffer(mm, dtype=ST_DTYPES[f.dtype], count=f.shape[1] * f.shape[2], offset=start)
        row = row.reshape(f.shape[1], f.shape[2])
        if out is None:
            out = row.astype(np.float32)  # a copy: the map can drop the pages
        else:
            out[...] = row
        if hasattr(mm, "madvise"):
            # Drop the pages from this process's resident set (they stay in the OS page cache), so RSS does
            # not grow with the number of distinct qids a long training run touches.
            page_start = start - start % _PAGE
            mm.madvise(mmap.MADV_DONTNEED, page_start, start + f.row_bytes - page_start)
        return out

    def _reopen(self, attempts: int = 5) -> None:
        """Take the store as it is on disk now (a merge running beside this reader replaces chunks by shards
        holding the same rows); it must still be the same store."""
        for attempt in range(attempts):
            try:
                fresh = FeatureStore(self.path)
                break
            except DataError:  # a file listed, then removed by the merge before its header was read
                if attempt == attempts - 1:
                    raise DataError(f"{self.path}: its data files kept changing while being read (an "
                                    "`extract --merge` beside this command?); rerun when it is done") from None
                time.sleep(0.2 * (attempt + 1))
        if fresh.identity != self.identity:
            raise DataError(f"{self.path}: replaced by another feature store while being read; rerun the command")
        self.close()
        self.__dict__.update(fresh.__dict__)

    def get(self, qid: str):
        """torch.float32 (tokens, dim); zeros for a qid without a row."""
        import torch

        row = self.read(qid)
        return self.zeros() if row is None else torch.from_numpy(row)

    def get_batch(self, qids: Iterable[str]):
        """torch.float32 (B, tokens, dim)."""
        import torch

        qids = list(qids)
        batch = np.zeros((len(qids), *self.feature_shape), dtype=np.float32)  # rows without features stay 0
        for i, qid in enumerate(qids):
            self.read(qid, out=batch[i])
        return torch.from_numpy(batch)

    def close(self) -> None:
        for mm in self._maps.values():
            mm.close()
        self._maps = collections.OrderedDict()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"], state["_verified"] = collections.OrderedDict(), set()
        return state

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, backbone={self.backbone!r}, shape={self.feature_shape}, "
                f"dtype={self.dtype}, rows={len(self)})")


def open_store(path: str | os.PathLike) -> FeatureStore:
    return FeatureStore(path)


def store_fingerprint(path: str | os.PathLike, splits: Sequence[str]) -> str:
    """sha256 of what says which features a store serves for `splits`: its identity (backbone, weights, shape …)
    and those splits' descriptions (which records, in which chunks). The bytes of each data file are checked
    against their CRC-32 when read; a merge or another split added does not change this."""
    root, infos = Path(path), split_infos(Path(path))
    manifest = read_json(root / "manifest.json") if (root / "manifest.json").is_file() else {}
    manifest = manifest if isinstance(manifest, dict) else {}
    described = {"identity": {k: manifest.get(k) for k in IDENTITY_KEYS}, "splits": {s: infos.get(s) for s in splits}}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------- writing


def file_identities(files: Sequence[DataFile]) -> dict[str, list]:
    """index.json's key: each data file's size and features' CRC-32 (swapped files no longer match a cache)."""
    return {f.name: [f.size, f.crc32] for f in files}


@contextlib.contextmanager
def metadata_held(root: Path) -> Iterator[None]:
    """The store's description (manifest, splits/, index.json) is written by one process at a time (shard jobs)."""
    with hold_lock(root / METADATA_LOCK, "extract", root, wait=True):
        yield


def refresh_store_files(root: Path) -> dict:
    """Rewrite index.json and manifest.json from what is on disk; returns the manifest."""
    with metadata_held(root):
        identity = read_json(root / "manifest.json")
        identity = {k: identity[k] for k in IDENTITY_KEYS if k in identity}
        files = scan_data_files(root)
        index = build_index(files)
        manifest = summarize(identity, split_infos(root), files, index)
        write_json(root / "index.json", {"files": file_identities(files),
                                         "qids": {q: [n, r] for q, (n, r) in index.items()}})
        write_json(root / "manifest.json", manifest)
    return manifest


def check_identity(root: Path, wanted: dict, keys: Sequence[str]) -> None:
    """Refuse to add to a store whose manifest disagrees with `wanted` on any of `keys`."""
    path = root / "manifest.json"
    if not path.is_file():
        return
    have = {**LEGACY_IDENTITY, **read_json(path)}
    for key in keys:
        if key in have and have[key] != wanted[key]:
            raise StoreMismatchError(
                f"{root} holds features with {key}={have[key]!r} but this run has {key}={wanted[key]!r} "
                f"(backbone {have.get('backbone')}, shape {have.get('feature_shape')}, dtype {have.get('dtype')}); "
                "use another --out")


def check_split_info(root: Path, info: dict) -> None:
    """Refuse to add a split's chunks to a store that holds that split from other records (or another --limit)."""
    path = root / "splits" / f"{info['split']}.json"
    if path.is_file():
        have = read_json(path)
        if have.get("limit") != info.get("limit"):
            raise StoreMismatchError(f"{path}: split {info['split']} holds {limit_text(have)}; this run asks for "
                                     f"{limit_text(info)}: use another --out, or the same --limit")
        if have.get("qids_sha1") != info["qids_sha1"]:
            raise StoreMismatchError(
                f"{path}: split {info['split']} was extracted from different records "
                f"({have.get('with_image')} images from {have.get('data_dir')}); use another --out")


def split_info(split: str, source: str, images_dir: str | None, records: int, qids: list[str],
               chunk_size: int, limit: int | None = None, images: int | None = None) -> dict:
    """splits/<split>.json: where the split came from and how its `qids` (rows, in order) are cut into chunks;
    with `extract --limit N` also `limit` and `images` (how many the split has: `qids` are the first N)."""
    info = {"split": split, "data_dir": source, "images_dir": images_dir, "records": records,
            "with_image": len(qids), "without_image": records - len(qids), "chunk_size": chunk_size,
            "num_chunks": -(-len(qids) // chunk_size),
            "qids_sha1": hashlib.sha1(json.dumps(qids).encode()).hexdigest()}
    if limit is not None:
        info.update(limit=limit, images=len(qids) if images is None else images,
                    without_image=records - (len(qids) if images is None else images))
    return info


def init_store(root: Path, identity: dict, infos: Sequence[dict], keys: Sequence[str] = IDENTITY_KEYS) -> None:
    """Write manifest.json (identity) and splits/<split>.json where missing; existing ones are kept, and must
    agree on `keys` (checked again here, under the metadata lock: another shard job may have just written them)."""
    make_dir(root)
    with metadata_held(root):
        check_identity(root, identity, keys)
        for info in infos:
            check_split_info(root, info)
        mark_output_dir(root, "extract")
        if not (root / "manifest.json").is_file():
            write_json(root / "manifest.json", {k: identity[k] for k in IDENTITY_KEYS})
        for info in infos:
            if not (root / "splits" / f"{info['split']}.json").is_file():
                write_json(root / "splits" / f"{info['split']}.json", info)


class ChunkWriter:
    """Writes the chunks of a store, each as one atomic file, from rows fed one at a time in chunk order.

    `plan` lists the chunks to write as (split, chunk index, number of items); every `add` / `add_bad` fills the
    current chunk, which is written as soon as its last item arrives. `on_first_write` runs once, before the
    first file, so a store's description goes in with its first data, not before.
    """

    def __init__(self, root: Path, feature_shape: Sequence[int], dtype: str,
                 plan: Sequence[tuple[str, int, int]] = (), on_first_write: Callable[[], None] | None = None):
        self.root, self.shape, self.np_dtype = Path(root), tuple(feature_shape), DTYPES[dtype][0]
        self._plan, self._next = list(plan), 0
        self._on_first_write = on_first_write
        self._qids: list[str] = []
        self._rows: list[np.ndarray] = []
        self._bad: list[dict] = []
        self._images: dict[str, str] = {}  # qid → digest of its image file (features.store_images)
        self._seen = 0
        self.chunks_written = self.rows_written = 0
        self.bad: list[dict] = []  # every skipped item written so far, with its split

    def add(self, qid: str, row: np.ndarray, image: str | None = None) -> None:
        self._rows.append(store_rows(self.root, [str(qid)], np.asarray(row)[None], self.np_dtype)[0])  # checked
        self._qids.append(str(qid))
        self._images.update({str(qid): image} if image else {})
        self._advance()

    def add_bad(self, qid: str, path: str, error: str) -> None:
        self._bad.append({"qid": str(qid), "path": path, "error": error})
        self._advance()

    def _advance(self) -> None:
        if self._next >= len(self._plan):
            raise MMCoTError("ChunkWriter: more items than the planned chunks hold")
        self._seen += 1
        split, chunk, size = self._plan[self._next]
        if self._seen == size:
            data = np.stack(self._rows) if self._rows else np.zeros((0, *self.shape), dtype=self.np_dtype)
            self.write_chunk(split, chunk, self._qids, data, self._bad, self._images)
            self._qids, self._rows, self._bad, self._images, self._seen = [], [], [], {}, 0
            self._next += 1

    def write_chunk(self, split: str, chunk: int, qids: Sequence[str], data: np.ndarray,
                    bad: Sequence[dict] = (), images: dict[str, str] | None = None) -> None:
        """One whole chunk: rows `data` (n, T, D) for `qids`, the items skipped as bad, `images` qid → digest."""
        if self._on_first_write is not None:
            self._on_first_write()
            self._on_first_write = None
        entry = {"split": split, "chunk": chunk, "qids": [str(q) for q in qids], "bad": list(bad)}
        entry.update({"images": dict(images)} if images else {})
        stored = store_rows(self.root, entry["qids"], np.asarray(data), self.np_dtype)
        write_data_file(self.root / "chunks" / f"{split}-{chunk:05d}.safetensors", stored, [entry])
        self.chunks_written += 1
        self.rows_written += len(entry["qids"])
        self.bad.extend({"split": split, **b} for b in entry["bad"])


def import_features(out: str | os.PathLike, *, backbone: str, split: str, qids: Sequence[str], features,
                    dtype: str = "float16", chunk_size: int = DEFAULT_CHUNK_SIZE, variant: str = "",
                    weights: str = "imported", source: str = "(imported array)", alpha: str = "original") -> dict:
    """Write an existing (N, T, D) array (numpy array or np.memmap, e.g. the original detr.npy rows) as a split
    of a feature store, chunk by chunk; returns the manifest. Row i belongs to qids[i]; `alpha`: the policy its
    images were decoded with (the original's files: "original")."""
    if len(qids) != len(features):
        raise UsageError(f"{len(qids)} qids for {len(features)} feature rows")
    if dtype not in DTYPES:
        raise UsageError(f"dtype {dtype}: choose one of {', '.join(DTYPES)}")
    root = Path(out)
    identity = {"format": FORMAT, "backbone": backbone, "variant": variant, "weights": weights,
                "feature_shape": [int(features.shape[1]), int(features.shape[2])], "dtype": dtype,
                "chunk_size": chunk_size, "alpha": alpha}
    check_identity(root, identity, list(identity))
    qids = [str(q) for q in qids]
    info = split_info(split, source, None, len(qids), qids, chunk_size)
    init_store(root, identity, [info])
    writer = ChunkWriter(root, identity["feature_shape"], dtype)
    for i in range(info["num_chunks"]):
        rows = slice(i * chunk_size, (i + 1) * chunk_size)
        writer.write_chunk(split, i, qids[rows], np.asarray(features[rows]))
    return refresh_store_files(root)
