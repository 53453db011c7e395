"""Vision feature extraction and the memory-mapped feature store (FEATURES_DIR, see docs/FORMATS.md).

Layout of a store directory:

    manifest.json              identity (backbone, variant, weights, feature_shape, dtype, chunk_size) + summary
    splits/<split>.json        per split: source data dir, record counts, how its images are cut into chunks
    chunks/<split>-NNNNN.safetensors   one finished chunk: tensor "features" (rows, T, D) + metadata (qids, bad)
    shards/<split>-NNNNN.safetensors   after `--merge`: several whole chunks compacted into one file
    index.json                 cache of qid → (file, row); rebuilt from file headers when files changed

Work is cut into fixed-size chunks of a split's images (record order). Each chunk file is written to a temp name
and renamed, so a killed run leaves only whole chunks; rerunning skips them. `--shard K/N` takes chunks with
index % N == K; since every file names its own qids in its header, N shard runs together form a complete store
without any shared mutable file. Batches never span chunks, so a chunk's numbers do not depend on sharding.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mmcot_cli import __version__
from mmcot_cli.errors import DataError, MMCoTError, UsageError
from mmcot_cli.io import atomic_path, make_dir, read_json, write_json

FORMAT = "mmcot-features/1"
DEFAULT_CHUNK_SIZE = 256
DTYPES = {"float16": (np.float16, "F16"), "float32": (np.float32, "F32")}
_ST_DTYPES = {"F16": np.float16, "F32": np.float32}
MERGED_SHARD_BYTES = 1 << 30  # merge packs whole chunks into files of about this size
_PAGE = mmap.PAGESIZE


class StoreMismatchError(MMCoTError):
    """Adding features to a store built with another backbone / shape / dtype / records."""


class ShapeError(MMCoTError):
    """A backbone produced features of a shape other than it declares."""


# --------------------------------------------------------------------------------------------------- reading


@dataclass
class DataFile:
    """One safetensors file of the store, as described by its header (read without touching the data)."""

    name: str  # relative to the store directory, e.g. "chunks/test-00003.safetensors"
    path: Path
    dtype: str  # "F16" / "F32"
    shape: tuple[int, int, int]
    data_offset: int  # byte offset of row 0 in the file
    entries: list[dict]  # [{split, chunk, qids: [...], bad: [...]}] in row order
    size: int

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * self.shape[2] * np.dtype(_ST_DTYPES[self.dtype]).itemsize


def read_data_file(path: Path, name: str) -> DataFile:
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        meta = json.loads(header.get("__metadata__", {})["mmcot"])
        t = header["features"]
        begin = int(t["data_offsets"][0])
    except (OSError, struct.error, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a readable mmcot feature file ({type(e).__name__}: {e}); delete it and rerun "
                        "the same `mmcot extract` to re-extract just that part") from None
    return DataFile(name=name, path=path, dtype=t["dtype"], shape=tuple(t["shape"]), data_offset=8 + n + begin,
                    entries=meta["entries"], size=path.stat().st_size)


def scan_data_files(root: Path) -> list[DataFile]:
    """Every finished data file of the store: merged shards first, then chunks, each in name order."""
    files = []
    for sub in ("shards", "chunks"):
        d = root / sub
        if d.is_dir():
            for p in sorted(d.glob("*.safetensors")):
                files.append(read_data_file(p, f"{sub}/{p.name}"))
    return files


def _split_infos(root: Path) -> dict[str, dict]:
    d = root / "splits"
    return {p.stem: read_json(p) for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


def build_index(files: Sequence[DataFile]) -> dict[str, tuple[str, int]]:
    index: dict[str, tuple[str, int]] = {}
    for f in files:
        row = 0
        for entry in f.entries:
            for qid in entry["qids"]:
                index.setdefault(qid, (f.name, row))  # the same chunk in a shard and a leftover chunk: identical
                row += 1
    return index


def summarize(identity: dict, split_infos: dict[str, dict], files: Sequence[DataFile],
              index: dict[str, tuple[str, int]]) -> dict:
    """The manifest: store identity + per-split progress (chunks done/missing, rows, bad items)."""
    done: dict[str, dict[int, dict]] = {}
    for f in files:
        for entry in f.entries:
            done.setdefault(entry["split"], {}).setdefault(int(entry["chunk"]), entry)
    splits, bad = {}, []
    for split in sorted(set(split_infos) | set(done)):
        info = dict(split_infos.get(split, {}))
        chunks = done.get(split, {})
        num_chunks = int(info.get("num_chunks", len(chunks)))
        missing = [i for i in range(num_chunks) if i not in chunks]
        info.update(count=sum(len(e["qids"]) for e in chunks.values()), chunks_done=len(chunks),
                    missing_chunks=missing, complete=not missing)
        splits[split] = info
        for i in sorted(chunks):
            bad.extend({"split": split, **b} for b in chunks[i].get("bad", []))
    return {**identity, "count": len(index), "splits": splits, "bad": bad, "files": len(files),
            "created_by": f"mmcot {__version__}"}


class FeatureStore:
    """Read features by qid from a store directory; one row is read through a memory map, never a whole file.

    Problems without a row (no image, or a skipped bad image) read as zeros of the declared shape.
    Picklable (DataLoader workers reopen the maps lazily).
    """

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
        files = scan_data_files(self.path)
        self._files = {f.name: f for f in files}
        self._index = self._load_index(files)
        self.manifest = summarize(self.identity, _split_infos(self.path), files, self._index)
        self._maps: dict[str, mmap.mmap] = {}

    def _load_index(self, files: list[DataFile]) -> dict[str, tuple[str, int]]:
        cached = self.path / "index.json"
        if cached.is_file():
            try:
                data = read_json(cached)
                if data.get("files") == {f.name: f.size for f in files}:
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

    def zeros(self):
        import torch

        return torch.zeros(self.feature_shape, dtype=torch.float32)

    def read(self, qid: str, out: np.ndarray | None = None) -> np.ndarray | None:
        """The stored row as a float32 numpy array (T, D) (written into `out` if given), or None without a row."""
        loc = self._index.get(str(qid))
        if loc is None:
            return None
        f = self._files[loc[0]]
        mm = self._maps.get(f.name)
        if mm is None:
            with open(f.path, "rb") as fh:
                mm = self._maps[f.name] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        start = f.data_offset + loc[1] * f.row_bytes
        row = np.frombuffer(mm, dtype=_ST_DTYPES[f.dtype], count=f.shape[1] * f.shape[2], offset=start)
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
        self._maps = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, backbone={self.backbone!r}, shape={self.feature_shape}, "
                f"dtype={self.dtype}, rows={len(self)})")


def open_store(path: str | os.PathLike) -> FeatureStore:
    return FeatureStore(path)


# --------------------------------------------------------------------------------------------------- writing

IDENTITY_KEYS = ("format", "backbone", "variant", "weights", "feature_shape", "dtype", "chunk_size")


def _write_data_file(path: Path, features: np.ndarray, entries: list[dict]) -> None:
    from safetensors.numpy import save_file

    meta = {"mmcot": json.dumps({"entries": entries}, sort_keys=True, ensure_ascii=False)}
    with atomic_path(path) as tmp:
        save_file({"features": np.ascontiguousarray(features)}, str(tmp), metadata=meta)


def refresh_store_files(root: Path) -> dict:
    """Rewrite index.json and manifest.json from what is on disk; returns the manifest."""
    identity = read_json(root / "manifest.json")
    identity = {k: identity[k] for k in IDENTITY_KEYS if k in identity}
    files = scan_data_files(root)
    index = build_index(files)
    manifest = summarize(identity, _split_infos(root), files, index)
    write_json(root / "index.json", {"files": {f.name: f.size for f in files},
                                     "qids": {q: [n, r] for q, (n, r) in index.items()}})
    write_json(root / "manifest.json", manifest)
    return manifest


def _check_identity(root: Path, wanted: dict, keys: Sequence[str]) -> None:
    path = root / "manifest.json"
    if not path.is_file():
        return
    have = read_json(path)
    for key in keys:
        if key in have and have[key] != wanted[key]:
            raise StoreMismatchError(
                f"{root} holds features with {key}={have[key]!r} but this run has {key}={wanted[key]!r} "
                f"(backbone {have.get('backbone')}, shape {have.get('feature_shape')}, dtype {have.get('dtype')}); "
                "use another --out")


def _init_store(root: Path, identity: dict, plans: Sequence["_SplitPlan"]) -> None:
    """Write manifest.json (identity) and splits/<split>.json where missing; existing ones are kept."""
    make_dir(root)
    if not (root / "manifest.json").is_file():
        write_json(root / "manifest.json", {k: identity[k] for k in IDENTITY_KEYS})
    for plan in plans:
        if not (root / "splits" / f"{plan.split}.json").is_file():
            write_json(root / "splits" / f"{plan.split}.json", plan.info)


def import_features(out: str | os.PathLike, *, backbone: str, split: str, qids: Sequence[str], features,
                    dtype: str = "float16", chunk_size: int = DEFAULT_CHUNK_SIZE, variant: str = "",
                    weights: str = "imported", source: str = "(imported array)") -> dict:
    """Write an existing (N, T, D) array (numpy array or np.memmap, e.g. the original detr.npy rows) as a split
    of a feature store, chunk by chunk; returns the manifest. Row i belongs to qids[i]."""
    if len(qids) != len(features):
        raise UsageError(f"{len(qids)} qids for {len(features)} feature rows")
    if dtype not in DTYPES:
        raise UsageError(f"dtype {dtype}: choose one of {', '.join(DTYPES)}")
    root = Path(out)
    identity = {"format": FORMAT, "backbone": backbone, "variant": variant, "weights": weights,
                "feature_shape": [int(features.shape[1]), int(features.shape[2])], "dtype": dtype,
                "chunk_size": chunk_size}
    _check_identity(root, identity, list(identity))
    info = _split_info(split, source, None, len(qids), [str(q) for q in qids], chunk_size)
    _init_store(root, identity, [_SplitPlan(split, [], info, chunk_size)])
    for i in range(info["num_chunks"]):
        rows = slice(i * chunk_size, (i + 1) * chunk_size)
        entry = {"split": split, "chunk": i, "qids": [str(q) for q in qids[rows]], "bad": []}
        _write_data_file(root / "chunks" / f"{split}-{i:05d}.safetensors",
                         np.asarray(features[rows]).astype(DTYPES[dtype][0]), [entry])
    return refresh_store_files(root)


# ------------------------------------------------------------------------------------------------ extraction


@dataclass
class ExtractConfig:
    backbone: str
    out: str
    data_dir: str | None = None
    splits: tuple[str, ...] = ("test",)
    images_dir: str | None = None  # relocate images: <images_dir>/<qid>/<file name>
    batch_size: int = 16
    workers: int | None = None  # None: min(4, CPUs)
    device: str = "cpu"
    dtype: str = "float16"
    shard: tuple[int, int] | None = None  # (K, N), 0 <= K < N
    random_init: bool = False
    weights: str | None = None
    variant: str | None = None
    skip_bad: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # Records per split, for library use without a DATA_DIR (notebooks, tests); None: load_records(data_dir).
    records: dict[str, list[dict]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype}: choose one of {', '.join(DTYPES)}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1 (got {self.batch_size})")
        if self.chunk_size < 1:
            raise UsageError(f"--chunk-size must be >= 1 (got {self.chunk_size})")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be >= 0 (got {self.workers})")
        if self.shard is not None:
            k, n = self.shard
            if n < 1 or not 0 <= k < n:
                raise UsageError(f"--shard {k}/{n}: need 0 <= K < N")
        if self.random_init and self.weights:
            raise UsageError("give either --random-init or --weights, not both")
        if not self.splits:
            raise UsageError("no split given")
        if self.records is None and not self.data_dir:
            raise UsageError("--data DATA_DIR is required")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' → (K, N) with 0-based K (SLURM array task ids 0..N-1)."""
    if text is None or text == "":
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {text}: need 0 <= K < N (K counts from 0)")
    return k, n


@dataclass
class _SplitPlan:
    split: str
    items: list[tuple[str, str]]  # (qid, image path) for records that have an image, in record order
    info: dict
    chunk_size: int

    @property
    def num_chunks(self) -> int:
        return -(-len(self.items) // self.chunk_size)

    def chunk(self, i: int) -> list[tuple[str, str]]:
        return self.items[i * self.chunk_size:(i + 1) * self.chunk_size]


def _plan_split(split: str, records: list[dict], cfg: ExtractConfig, source: str) -> _SplitPlan:
    from mmcot_cli.images import record_image

    items = []
    for rec in records:
        path = record_image(rec, cfg.images_dir)
        if path is not None:
            items.append((str(rec["qid"]), path))
    info = _split_info(split, source, cfg.images_dir, len(records), [q for q, _ in items], cfg.chunk_size)
    return _SplitPlan(split, items, info, cfg.chunk_size)


def _split_info(split: str, source: str, images_dir: str | None, records: int, qids: list[str],
                chunk_size: int) -> dict:
    """splits/<split>.json: where the split came from and how its `qids` (rows, in order) are cut into chunks."""
    return {"split": split, "data_dir": source, "images_dir": images_dir, "records": records,
            "with_image": len(qids), "without_image": records - len(qids), "chunk_size": chunk_size,
            "num_chunks": -(-len(qids) // chunk_size),
            "qids_sha1": hashlib.sha1(json.dumps(qids).encode()).hexdigest()}


def _load_split_records(cfg: ExtractConfig, split: str) -> list[dict]:
    if cfg.records is not None:
        if split not in cfg.records:
            raise UsageError(f"no records given for split {split!r}")
        return cfg.records[split]
    from mmcot_cli.data import load_records

    return load_records(cfg.data_dir, split)


class _ImageDataset:
    """Items → (position, tensor | None, error | None); decoding and preprocessing run in the workers."""

    def __init__(self, items: list[tuple[str, str]], preprocess):
        self.items, self.preprocess = items, preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from mmcot_cli.images import ImageError, load_rgb

        qid, path = self.items[i]
        try:
            return i, self.preprocess(load_rgb(path, qid)), None
        except ImageError as e:
            return i, None, e.reason
        except Exception as e:  # a preprocessing failure is still this image's problem; name it
            return i, None, f"{type(e).__name__}: {e}"


def _collate(samples):
    import torch

    good = [s for s in samples if s[1] is not None]
    tensors = torch.stack([s[1] for s in good]) if good else None
    return [s[0] for s in good], tensors, [(s[0], s[2]) for s in samples if s[1] is None]


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def extract(cfg: ExtractConfig) -> dict:
    """Extract features for cfg.splits into cfg.out (adding to / resuming an existing store); returns a summary."""
    from torch.utils.data import DataLoader

    from mmcot_cli import plugins, progress
    from mmcot_cli.hookspecs import VisionBuildOptions
    from mmcot_cli.images import ImageError

    started = time.time()
    backbone = plugins.get_vision_backbone(cfg.backbone)
    root = Path(cfg.out)
    if root.exists() and not root.is_dir():
        raise UsageError(f"--out {root}: exists and is not a directory")
    source = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else "(records given directly)"
    plans = [_plan_split(s, _load_split_records(cfg, s), cfg, source) for s in cfg.splits]

    wanted = {"format": FORMAT, "backbone": backbone.name, "variant": cfg.variant or "", "dtype": cfg.dtype,
              "chunk_size": cfg.chunk_size}
    _check_identity(root, wanted, list(wanted))  # cheap checks before building a model
    for plan in plans:
        info_path = root / "splits" / f"{plan.split}.json"
        if info_path.is_file():
            have = read_json(info_path)
            if have.get("qids_sha1") != plan.info["qids_sha1"]:
                raise StoreMismatchError(
                    f"{info_path}: split {plan.split} was extracted from different records "
                    f"({have.get('with_image')} images from {have.get('data_dir')}); use another --out")

    done = {(e["split"], int(e["chunk"])) for f in scan_data_files(root) for e in f.entries} if root.is_dir() else set()
    k, n = cfg.shard or (0, 1)
    pending: list[tuple[_SplitPlan, int]] = []
    skipped = 0
    for plan in plans:
        for i in range(plan.num_chunks):
            if i % n != k:
                continue
            if (plan.split, i) in done:
                skipped += 1
            else:
                pending.append((plan, i))

    weights_desc = None
    written = rows_written = 0
    loop_started = None
    bad_this_run: list[dict] = []
    if pending:
        encoder = plugins.build_vision_encoder(backbone, VisionBuildOptions(
            variant=cfg.variant, weights=cfg.weights, random_init=cfg.random_init, device=cfg.device))
        shape = tuple(int(x) for x in encoder.feature_shape)
        if not cfg.variant and shape != tuple(backbone.feature_shape):
            raise ShapeError(f"backbone {backbone.name} declares features {tuple(backbone.feature_shape)} but its "
                             f"encoder ({encoder.weights}) produces {shape}")
        weights_desc = encoder.weights
        wanted.update(weights=weights_desc, feature_shape=list(shape))
        _check_identity(root, wanted, ["weights", "feature_shape"])

        # One flat item list; batches are cut inside each chunk so a chunk's rows never depend on its neighbours.
        items: list[tuple[str, str]] = []
        batches: list[list[int]] = []
        chunk_of_batch: list[int] = []
        batches_left: list[int] = []  # per pending chunk: batches not yet encoded
        for ci, (plan, i) in enumerate(pending):
            start = len(items)
            items.extend(plan.chunk(i))
            starts = range(start, len(items), cfg.batch_size)
            for b in starts:
                batches.append(list(range(b, min(b + cfg.batch_size, len(items)))))
                chunk_of_batch.append(ci)
            batches_left.append(len(starts))
        workers = default_workers() if cfg.workers is None else cfg.workers
        loader = DataLoader(_ImageDataset(items, encoder.preprocess), batch_sampler=batches, num_workers=workers,
                            collate_fn=_collate, pin_memory=cfg.device.startswith("cuda"))
        np_dtype = DTYPES[cfg.dtype][0]
        loop_started = time.time()  # throughput excludes building the model
        rows: dict[int, np.ndarray] = {}
        bad: dict[int, str] = {}
        chunk_start = 0
        with progress.make_progress() as bar:
            task = bar.add_task(f"extract {backbone.name}", total=len(items))
            for bi, (positions, pixels, errors) in enumerate(loader):
                ci = chunk_of_batch[bi]
                plan, chunk_idx = pending[ci]
                for pos, reason in errors:
                    qid, path = items[pos]
                    if not cfg.skip_bad:
                        raise ImageError(qid, path, reason)
                    bad[pos] = reason
                if pixels is not None:
                    out = encoder.encode(pixels)
                    if tuple(out.shape[1:]) != shape or out.shape[0] != len(positions):
                        raise ShapeError(f"backbone {backbone.name} ({cfg.variant or 'default'}, {encoder.weights}) "
                                         f"produced features {tuple(out.shape)} for a batch of {len(positions)}, "
                                         f"expected (B, {shape[0]}, {shape[1]})")
                    feats = out.detach().float().cpu().numpy().astype(np_dtype)
                    for j, pos in enumerate(positions):
                        rows[pos] = feats[j]
                bar.advance(task, len(positions) + len(errors))
                batches_left[ci] -= 1
                if batches_left[ci] == 0:  # the chunk is complete: write it atomically
                    chunk_items = plan.chunk(chunk_idx)
                    span = range(chunk_start, chunk_start + len(chunk_items))
                    kept = [p for p in span if p in rows]
                    data = (np.stack([rows.pop(p) for p in kept]) if kept
                            else np.zeros((0, *shape), dtype=np_dtype))
                    entry = {"split": plan.split, "chunk": chunk_idx, "qids": [items[p][0] for p in kept],
                             "bad": [{"qid": items[p][0], "path": items[p][1], "error": bad.pop(p)}
                                     for p in span if p in bad]}
                    bad_this_run.extend({"split": plan.split, **b} for b in entry["bad"])
                    if written == 0:  # the store's description goes in with its first data, not before
                        _init_store(root, wanted, plans)
                    _write_data_file(root / "chunks" / f"{plan.split}-{chunk_idx:05d}.safetensors", data, [entry])
                    written += 1
                    rows_written += len(kept)
                    chunk_start += len(chunk_items)
    if "feature_shape" not in wanted:
        # Nothing left to extract (resumed, or no images in these splits): describe the store without a model.
        wanted.update(weights=cfg.weights or ("random-init" if cfg.random_init else backbone.default_weights),
                      feature_shape=list(backbone.feature_shape))
    _init_store(root, wanted, plans)

    manifest = refresh_store_files(root)
    elapsed = time.time() - started
    split_states = [manifest["splits"].get(p.split, {}) for p in plans]
    return {
        "backbone": backbone.name, "variant": manifest.get("variant") or None, "weights": manifest.get("weights"),
        "split": ",".join(cfg.splits), "splits": list(cfg.splits),
        "count": sum(s.get("count", 0) for s in split_states),
        "shape": list(manifest["feature_shape"]), "dtype": manifest["dtype"], "path": str(root),
        "shard": f"{k}/{n}" if cfg.shard else None, "extracted": rows_written, "chunks_written": written,
        "chunks_skipped": skipped, "bad": bad_this_run,
        "complete": all(s.get("complete", False) for s in split_states),
        "seconds": round(elapsed, 3),
        "images_per_second": (round((rows_written + len(bad_this_run)) / (time.time() - loop_started), 2)
                              if loop_started and rows_written else None),
    }


# ----------------------------------------------------------------------------------------------------- merge


def merge(path: str | os.PathLike, max_shard_bytes: int = MERGED_SHARD_BYTES) -> dict:
    """Compact a (sharded) store: whole chunks packed into shards/<split>-NNNNN.safetensors in chunk order.

    Every split must be complete. The result does not depend on how the chunks were produced (one run or N shard
    runs in any order), byte for byte. A crash midway leaves a readable store; rerunning finishes the job.
    """
    from mmcot_cli import progress

    root = Path(path)
    store = open_store(root)
    incomplete = {s: i["missing_chunks"] for s, i in store.manifest["splits"].items() if not i["complete"]}
    if incomplete:
        desc = "; ".join(f"{s}: chunks {', '.join(map(str, m[:10]))}{' …' if len(m) > 10 else ''}"
                         for s, m in incomplete.items())
        raise DataError(f"{root}: cannot merge, missing {desc} (run the remaining --shard jobs first)")
    files = list(store._files.values())
    by_split: dict[str, dict[int, tuple[DataFile, int, dict]]] = {}
    for f in files:
        row = 0
        for entry in f.entries:
            by_split.setdefault(entry["split"], {}).setdefault(int(entry["chunk"]), (f, row, entry))
            row += len(entry["qids"])
    shape = store.feature_shape
    np_dtype = DTYPES[store.dtype][0]
    row_bytes = shape[0] * shape[1] * np.dtype(np_dtype).itemsize
    written, removed = [], []
    for split in sorted(by_split):
        chunks = [by_split[split][i] for i in sorted(by_split[split])]
        groups: list[list[tuple[DataFile, int, dict]]] = [[]]
        size = 0
        for c in chunks:  # whole chunks per shard, a new shard once the size limit is reached
            n_bytes = len(c[2]["qids"]) * row_bytes
            if groups[-1] and size + n_bytes > max_shard_bytes:
                groups.append([])
                size = 0
            groups[-1].append(c)
            size += n_bytes
        names = [f"shards/{split}-{j:05d}.safetensors" for j in range(len(groups))]
        existing = {f.name for f in files if any(e["split"] == split for e in f.entries)}
        if existing == set(names) and all(
                [e["chunk"] for e in store._files[nm].entries] == [c[2]["chunk"] for c in g]
                for nm, g in zip(names, groups)):
            continue  # this split is already merged
        for name, group in progress.track(list(zip(names, groups)), f"merge {split}"):
            parts = []
            for f, row, entry in group:
                n_rows = len(entry["qids"])
                mm = np.memmap(f.path, dtype=_ST_DTYPES[f.dtype], mode="r",
                               offset=f.data_offset + row * f.row_bytes, shape=(n_rows, *shape)) if n_rows else None
                parts.append(np.array(mm) if mm is not None else np.zeros((0, *shape), np_dtype))
                del mm
            entries = [{"split": e["split"], "chunk": int(e["chunk"]), "qids": e["qids"], "bad": e.get("bad", [])}
                       for _, _, e in group]
            _write_data_file(root / name, np.concatenate(parts).astype(np_dtype), entries)
            written.append(name)
        for old in sorted(existing - set(names)):
            (root / old).unlink(missing_ok=True)  # a concurrent merge may have removed it
            removed.append(old)
    store.close()
    manifest = refresh_store_files(root)
    return {"path": str(root), "backbone": manifest["backbone"], "count": manifest["count"],
            "shape": manifest["feature_shape"], "dtype": manifest["dtype"], "files_written": written,
            "files_removed": len(removed), "splits": sorted(manifest["splits"])}
