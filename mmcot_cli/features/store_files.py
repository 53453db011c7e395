"""The data files of a feature store (safetensors chunks and merged shards): reading a header with a size check,
verifying the CRC-32 recorded at write time, and writing one atomically. A truncated or corrupted file is a
DataError naming it and how to recover; a resumed extract removes such files and re-extracts them."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcot_cli.errors import DataError
from mmcot_cli.io import atomic_path

ST_DTYPES = {"F16": np.float16, "F32": np.float32}


def map_budget() -> int:
    """How many data files one reader keeps memory-mapped at once (each map holds a file descriptor): a quarter
    of the open-files limit (`ulimit -n`), between 4 and 256, so a store of many chunks reads under any limit
    (the least recently used map is closed first)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 64
    if soft == getattr(resource, "RLIM_INFINITY", -1) or soft <= 0:
        return 256
    return max(4, min(256, soft // 4))


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
    crc32: int | None = None  # of the feature bytes, recorded when the file was written (None: older files)

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * self.shape[2] * np.dtype(ST_DTYPES[self.dtype]).itemsize

    def read_rows(self, row: int, count: int) -> np.ndarray:
        """Rows [row, row + count) as a (count, T, D) array in the stored dtype (a copy, the file is closed)."""
        if count == 0:
            return np.zeros((0, self.shape[1], self.shape[2]), dtype=ST_DTYPES[self.dtype])
        mm = np.memmap(self.path, dtype=ST_DTYPES[self.dtype], mode="r",
                       offset=self.data_offset + row * self.row_bytes, shape=(count, self.shape[1], self.shape[2]))
        rows = np.array(mm)
        del mm
        return rows


RECOVER = "rerun the same `mmcot extract` (it re-extracts just that part)"


def read_data_file(path: Path, name: str) -> DataFile:
    """A data file's header, checked against the file's size (a truncated chunk is an error naming it)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size:
                raise ValueError("header length beyond the end of the file")
            header = json.loads(fh.read(n))
        meta = json.loads(header.get("__metadata__", {})["mmcot"])
        t = header["features"]
        begin, end = (int(x) for x in t["data_offsets"])
        shape = tuple(int(x) for x in t["shape"])
        expected = int(np.prod(shape)) * np.dtype(ST_DTYPES[t["dtype"]]).itemsize
        entries = meta["entries"]
    except (OSError, struct.error, ValueError, KeyError, TypeError, RecursionError) as e:
        raise DataError(f"{path}: not a readable mmcot feature file ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''}); {RECOVER}") from None
    if end - begin != expected or 8 + n + end != size or len(shape) != 3:
        raise DataError(f"{path}: truncated or corrupted feature file ({size} bytes, its header describes "
                        f"{8 + n + end}); {RECOVER}")
    misplaced = name_problem(name, entries)
    if misplaced:
        raise DataError(f"{path}: {misplaced}; {RECOVER}")
    return DataFile(name=name, path=path, dtype=t["dtype"], shape=shape, data_offset=8 + n + begin,
                    entries=entries, size=size, crc32=meta.get("crc32"))


def name_problem(name: str, entries) -> str | None:
    """Why a data file's header disagrees with its name (chunks/<split>-NNNNN holds exactly that chunk; shards/
    <split>-NNNNN only chunks of <split>): a file renamed, swapped or copied from elsewhere serves other rows."""
    sub, _, base = name.partition("/")
    split = base.removesuffix(".safetensors").rpartition("-")[0]
    try:
        held = [f"{e['split']}-{int(e['chunk']):05d}" for e in entries]
    except (TypeError, KeyError, ValueError):
        return "its header does not list its chunks"
    if sub == "chunks" and held != [base.removesuffix(".safetensors")]:
        return f"holds chunk {', '.join(held) or '(none)'}, not the one its name says (files renamed or swapped?)"
    if sub == "shards" and any(h.rpartition("-")[0] != split for h in held):
        return f"holds chunks of another split ({held[0]}) than its name says (files renamed or swapped?)"
    return None


def identity_problem(f: DataFile, feature_shape, dtype: str) -> str | None:
    """Why data file `f` cannot belong to a store of `feature_shape` / `dtype` ("float16"), or None."""
    want = {"float16": "F16", "float32": "F32"}.get(dtype, dtype)
    if list(f.shape[1:]) != [int(x) for x in feature_shape] or f.dtype != want:
        return (f"{f.path}: holds features {list(f.shape[1:])} {f.dtype}, but the store's manifest.json says "
                f"{list(feature_shape)} {want} (written by another extract at the same time?); {RECOVER}")
    return None


def verify_data_file(f: DataFile) -> None:
    """Check the feature bytes against the CRC-32 recorded at write time (reads the whole file)."""
    if f.crc32 is None:
        return
    import zlib

    crc = 0
    buf = bytearray(1 << 16)  # small reused buffer: verifying a file does not load it into memory
    view = memoryview(buf)
    with open(f.path, "rb", buffering=0) as fh:
        fh.seek(f.data_offset)
        while n := fh.readinto(buf):
            crc = zlib.crc32(view[:n], crc)
    if crc != f.crc32:
        raise DataError(f"{f.path}: corrupted feature file (checksum mismatch); {RECOVER}")


def scan_for_resume(root: Path) -> tuple[list[DataFile], list[str]]:
    """(good data files, names of removed bad ones): a resumed extract re-extracts truncated, corrupted, misplaced
    files and files that disagree with the store's manifest."""
    try:
        identity = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet (or damaged: extract's identity check names it)
        identity = {}
    identity = identity if isinstance(identity, dict) else {}
    good, removed = [], []
    for sub in ("shards", "chunks"):
        d = root / sub
        for p in sorted(d.glob("*.safetensors")) if d.is_dir() else []:
            try:
                f = read_data_file(p, f"{sub}/{p.name}")
                if "feature_shape" in identity and identity_problem(f, identity["feature_shape"], identity["dtype"]):
                    raise DataError(f"{p}: other features than the manifest describes")
                verify_data_file(f)
            except DataError:
                p.unlink()
                removed.append(f"{sub}/{p.name}")
                continue
            good.append(f)
    return good, removed


def write_data_file(path: Path, features: np.ndarray, entries: list[dict]) -> None:
    """One data file (tensor "features" + the entries naming its rows), written atomically."""
    import zlib

    from safetensors.numpy import save_file

    features = np.ascontiguousarray(features)
    # the raw bytes, verified when extract resumes (verify_data_file); a chunk whose every image was skipped as
    # bad holds no row at all (memoryview cannot cast a view with a 0 in its shape, a flat byte view can)
    crc = zlib.crc32(features.reshape(-1).view(np.uint8))
    meta = {"mmcot": json.dumps({"entries": entries, "crc32": crc}, sort_keys=True, ensure_ascii=False)}
    with atomic_path(path) as tmp:
        save_file({"features": features}, str(tmp), metadata=meta)


def store_rows(root: Path, qids: list[str], rows: np.ndarray, np_dtype) -> np.ndarray:
    """`rows` in the store's dtype, refused (DataError naming the qid) when any value is NaN or infinite: every
    store write passes here (extract, import-features), so training never meets them as a loss of NaN."""
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused below with its own reason
        stored = rows.astype(np_dtype)
    finite = np.isfinite(stored).all(axis=tuple(range(1, stored.ndim)))  # per row (none in an empty chunk)
    if finite.all():
        return stored
    row = int(np.flatnonzero(~finite)[0])
    why = (f"finite in the input but beyond {np.dtype(np_dtype).name}'s range (±{np.finfo(np_dtype).max:.0f}); "
           "store float32 (--dtype float32)" if np.isfinite(rows[row]).all() else "NaN or infinite values")
    raise DataError(f"{root}: refusing to store the features of qid {qids[row]}: {why}")
