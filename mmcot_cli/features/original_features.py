"""The original release's vision-feature files → an mmcot feature store (`mmcot import-features`).

The release ships one array per backbone, shaped (N, P, D) (`detr.npy`, `clip.npy`, `vit.pth`; `resnet.npy` is
(N, D) and is read as P = 1), indexed by `name_map.json` ({qid: "row"}). Problems of a split without an entry get
no row in the store, which reads them as zeros of the declared shape, as the original feeds them zeros.

Files can be far larger than memory (the released vit.pth is 11,208 × 145 × 1024 float32, 6.6 GB), so rows are
read with positioned reads (`os.pread`) straight from where the array's bytes lie in the file (after the .npy
header; inside the uncompressed zip record of a `torch.save` file, found through a `weights_only`, memory-mapped
`torch.load`), one store chunk at a time, written by the store's own chunk writer. Reads go through the OS page cache, not a memory map, so the process's
resident memory stays at about one chunk whatever the file size.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, UsageError, first_line, torch_load_problem
from mmcot_cli.features.settings import ImportFeaturesConfig
from mmcot_cli.io import make_dir, read_json
from mmcot_cli.output_guard import mark_output_dir
from mmcot_cli.outputs import claim_output_dir
from mmcot_cli.progress import make_progress
from mmcot_cli.registry.hub import parse_source, repo_file
from mmcot_cli.registry.manager import get_vision_backbone

STORE_DTYPES = ("float16", "float32")  # what the feature store holds
FEATURE_SUFFIXES = (".npy", ".pth", ".pt")  # numpy arrays, torch.save'd tensors
ZERO_ROW = -1  # a stored row of zeros (see plan_split)


@dataclass
class RowFile:
    """A C-ordered (N, P, D) array whose bytes start at `offset` in `path`; rows are read on demand."""

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    offset: int

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * self.shape[2] * self.dtype.itemsize

    def read_rows(self, rows: Sequence[int]) -> np.ndarray:
        out = np.empty((len(rows), self.shape[1], self.shape[2]), dtype=self.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        with open(self.path, "rb") as fh:
            fd = fh.fileno()
            for i, row in enumerate(rows):
                if row == ZERO_ROW:
                    flat[i] = 0
                    continue
                data = os.pread(fd, self.row_bytes, self.offset + int(row) * self.row_bytes)
                if len(data) != self.row_bytes:
                    raise DataError(f"{self.path}: truncated (row {row} ends past the end of the file)")
                flat[i] = np.frombuffer(data, dtype=np.uint8)
        return out


def _as_3d(path: Path, shape: tuple) -> tuple[int, int, int]:
    if len(shape) == 2:  # the released resnet.npy: one pooled vector per image
        return (int(shape[0]), 1, int(shape[1]))
    if len(shape) != 3:
        raise DataError(f"{path}: an array of shape {list(shape)}; expected (rows, tokens, dim)")
    return tuple(int(x) for x in shape)  # type: ignore[return-value]


def _check_size(rf: RowFile) -> RowFile:
    needed = rf.offset + rf.shape[0] * rf.row_bytes
    if rf.path.stat().st_size < needed:
        raise DataError(f"{rf.path}: truncated ({rf.path.stat().st_size} bytes, the header promises {needed})")
    return rf


def open_npy(path: Path) -> RowFile:
    from numpy.lib import format as npf

    try:
        with open(path, "rb") as fh:
            version = npf.read_magic(fh)
            reader = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
            shape, fortran, dtype = reader(fh)
            offset = fh.tell()
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npy file ({first_line(e)})") from None
    if fortran or dtype.hasobject:
        raise DataError(f"{path}: {'Fortran-ordered' if fortran else 'object'} arrays are not supported")
    return _check_size(RowFile(path, _as_3d(path, shape), np.dtype(dtype), offset))


def _zip_record_offset(path: Path, name: str) -> int:
    """Where the bytes of an uncompressed zip member start (after its local header)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise DataError(f"{path}: record {name} is compressed; cannot read rows in place")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def open_torch(path: Path) -> RowFile:
    """A torch.save'd tensor, loaded weights_only and memory-mapped (no data read) to learn its layout."""
    import torch

    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # weights_only refuses pickled code; old non-zip files cannot be mapped
        problem = torch_load_problem(e)
        zip_note = "; the zip format of torch>=1.6 is needed" if problem == first_line(e) else ""
        raise DataError(f"{path}: not a loadable torch.save file ({problem}{zip_note})") from None
    if not isinstance(tensor, torch.Tensor):
        raise DataError(f"{path}: holds a {type(tensor).__name__}, expected one tensor (rows, tokens, dim)")
    if not tensor.is_contiguous():
        raise DataError(f"{path}: the tensor is not contiguous; save it with tensor.contiguous()")
    try:
        dtype = np.dtype(str(tensor.dtype).removeprefix("torch."))
    except TypeError:
        raise DataError(f"{path}: dtype {tensor.dtype} has no numpy equivalent") from None
    with zipfile.ZipFile(path) as zf:
        records = [n for n in zf.namelist() if "/data/" in n and n.rsplit("/", 1)[-1].isdigit()]
    if len(records) != 1:
        raise DataError(f"{path}: expected one tensor storage in the file, found {len(records)}")
    offset = _zip_record_offset(path, records[0]) + tensor.storage_offset() * dtype.itemsize
    rf = _check_size(RowFile(path, _as_3d(path, tuple(tensor.shape)), dtype, offset))
    if len(tensor) and not np.array_equal(rf.read_rows([0]).reshape(-1), tensor[0].numpy().reshape(-1),
                                          equal_nan=True):
        raise DataError(f"{path}: could not locate the tensor's bytes in the file")
    return rf


def open_feature_file(path: str | Path) -> RowFile:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".npy":
        return open_npy(path)
    if path.suffix in (".pth", ".pt"):
        return open_torch(path)
    raise UsageError(f"{path}: unknown feature file type {path.suffix!r}; expected {', '.join(FEATURE_SUFFIXES)}")


def read_name_map(path: str | Path) -> dict[str, int]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{qid: row}}")
    out = {}
    for qid, row in data.items():  # the release writes rows as strings ("17"); ints are fine, 1.5 or true are not
        text = row.strip() if isinstance(row, str) else None
        if isinstance(row, bool) or not (isinstance(row, int) or (text and len(text) < 19 and text.lstrip("-").isdigit())):
            raise DataError(f"{path}: qid {qid}: row {str(row)[:40]!r} is not an integer")
        out[str(qid)] = int(row)
    return out


def plan_split(records: list[dict], name_map: dict[str, int], rf: RowFile, where: str) -> tuple[list, list, int]:
    """(qids to store, their file rows, count of problems left with zero features) for one split.

    A problem without a name_map entry gets zeros, as in the original: no row at all when it has no picture, an
    explicit zero row when it has choice pictures only (so coverage checks, which expect a row for every
    problem with an image, see that its zeros are intended). A question image without an entry is an error.
    """
    qids, rows, zeros = [], [], 0
    for rec in records:
        qid = str(rec["qid"])
        if qid in name_map:
            row = name_map[qid]
            if not 0 <= row < rf.shape[0]:
                raise DataError(f"name_map: qid {qid} → row {row}, but {rf.path} has {rf.shape[0]} rows")
            qids.append(qid)
            rows.append(row)
            continue
        if rec.get("image"):
            raise DataError(f"{where}: qid {qid} has an image ({rec['image']}) but no entry in the name map")
        zeros += 1
        if rec.get("image_paths"):
            qids.append(qid)
            rows.append(ZERO_ROW)
    return qids, rows, zeros


def write_split(root: Path, identity: dict, split: str, qids: list[str], rows: list[int], rf: RowFile,
                records: int, source: str, advance: Callable[[int], None], imported_from: dict | None = None) -> None:
    """One split into the store, a chunk at a time, through the store's own writer (each chunk file atomic)."""
    from mmcot_cli.features.store import (
        ChunkWriter,
        check_split_info,
        init_store,
        split_info,
    )

    size = identity["chunk_size"]
    info = split_info(split, source, None, records, qids, size)
    if imported_from:
        info["imported_from"] = imported_from  # splits/<split>.json and the manifest's splits.<split>
    check_split_info(root, info)
    init_store(root, identity, [info])
    writer = ChunkWriter(root, identity["feature_shape"], identity["dtype"])
    for i in range(info["num_chunks"]):
        part = slice(i * size, (i + 1) * size)
        writer.write_chunk(split, i, qids[part], rf.read_rows(rows[part]))  # converted to the store's dtype
        advance(len(qids[part]))


def import_feature_file(cfg: ImportFeaturesConfig) -> dict:
    """Import cfg.splits of DATA_DIR from the release file (local or a hub id) into FEATURES_DIR (held for the
    whole import); returns a summary."""
    hub_file, hub_map = parse_source(cfg.file, cfg.revision), parse_source(cfg.name_map, cfg.revision)
    if cfg.revision is not None and hub_file is None and hub_map is None:
        raise UsageError("--revision applies to hub ids (org/name/file), not to local files")
    with claim_output_dir(cfg.out, "import-features", inputs={"FILE": None if hub_file else cfg.file,
                                                               "--name-map": None if hub_map else cfg.name_map,
                                                               "--data": cfg.data_dir}):
        return _import_held(cfg, hub_file, hub_map)


def _import_held(cfg: ImportFeaturesConfig, hub_file, hub_map) -> dict:
    from mmcot_cli.features.store import (
        DEFAULT_CHUNK_SIZE,
        FORMAT,
        check_identity,
        refresh_store_files,
    )

    backbone = get_vision_backbone(cfg.backbone)
    file, name_map_file, origin = Path(cfg.file).expanduser(), Path(cfg.name_map).expanduser(), {}
    if hub_map is not None:  # the small file first: a wrong id fails before gigabytes are downloaded
        name_map_file, origin["name_map_hub"] = repo_file(hub_map, ("name_map.json",), "name map")
    if hub_file is not None:
        file, origin["file_hub"] = repo_file(hub_file, FEATURE_SUFFIXES, "feature file")
    rf = open_feature_file(file)
    if tuple(rf.shape[1:]) != tuple(backbone.feature_shape):
        raise DataError(f"{rf.path}: rows of shape {list(rf.shape[1:])}, but backbone {backbone.name} produces "
                        f"{list(backbone.feature_shape)}")
    dtype = cfg.dtype or rf.dtype.name
    if dtype not in STORE_DTYPES:
        raise UsageError(f"{rf.path}: dtype {dtype}; the feature store holds {' or '.join(STORE_DTYPES)} "
                         "(choose one with --dtype)")
    name_map = read_name_map(name_map_file)
    origin = {"file": str(rf.path), "name_map": str(name_map_file), **origin}
    plans = {}
    for split in cfg.splits:
        records = load_records(cfg.data_dir, split)
        plans[split] = (len(records), *plan_split(records, name_map, rf, f"{cfg.data_dir}/{split}.jsonl"))
    root = Path(cfg.out)
    identity = {"format": FORMAT, "backbone": backbone.name, "variant": "", "weights": f"imported:{rf.path.name}",
                "feature_shape": list(rf.shape[1:]), "dtype": dtype, "chunk_size": DEFAULT_CHUNK_SIZE,
                "alpha": "original"}  # the original decoded its images with convert("RGB")
    check_identity(root, identity, list(identity))  # before any file is written
    make_dir(root)
    mark_output_dir(root, "import-features")
    summary = {"out": str(cfg.out), "file": str(rf.path), "imported_from": origin, "backbone": backbone.name,
               "feature_shape": list(rf.shape[1:]), "file_dtype": rf.dtype.name, "dtype": dtype, "splits": {}}
    with make_progress() as progress:
        task = progress.add_task("import features", total=sum(len(p[1]) for p in plans.values()))
        for split, (n_records, qids, rows, zeros) in plans.items():
            write_split(root, identity, split, qids, rows, rf, n_records, str(cfg.data_dir),
                        lambda n: progress.advance(task, n), origin)
            summary["splits"][split] = {"records": n_records, "with_features": len(qids) - rows.count(ZERO_ROW),
                                        "zero_features": zeros}
    refresh_store_files(root)
    return summary
