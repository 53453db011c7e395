"""Vision feature extraction into a feature store (mmcot_cli/features/store.py): batching, sharding, resume, merge.

Work is cut into fixed-size chunks of a split's images (record order). Each finished chunk is one atomic file,
so a killed run leaves only whole chunks; rerunning skips them. `--shard K/N` takes chunks with index % N == K;
since every file names its own qids in its header, N shard runs together form a complete store without any
shared mutable file. Batches never span chunks, so a chunk's numbers do not depend on sharding.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcot_cli import progress
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, MMCoTError, ShapeError, UsageError
from mmcot_cli.features.settings import ExtractConfig
from mmcot_cli.features.store import (
    DTYPES,
    FORMAT,
    LEGACY_IDENTITY,
    ChunkWriter,
    check_identity,
    check_split_info,
    init_store,
    open_store,
    refresh_store_files,
    split_info,
)
from mmcot_cli.features.store_files import scan_for_resume, write_data_file
from mmcot_cli.features.store_images import retry_chunks
from mmcot_cli.io import read_json
from mmcot_cli.outputs import claim_output_dir, init_forked_worker, remove_debris_of
from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import VisionBuildOptions
from mmcot_cli.registry.weights import RANDOM_INIT
from mmcot_cli.validate import parse_device

MERGED_SHARD_BYTES = 1 << 30  # merge packs whole chunks into files of about this size


def resolve_alpha(cfg: ExtractConfig, backbone, root: Path) -> str:
    """--alpha, else the policy of the store being resumed / extended, else the backbone's default."""
    if cfg.alpha is not None:
        return cfg.alpha
    manifest = root / "manifest.json"
    if manifest.is_file():
        return read_json(manifest).get("alpha", LEGACY_IDENTITY["alpha"])
    return backbone.alpha


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


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


def _plan_split(split: str, cfg: ExtractConfig, source: str) -> _SplitPlan:
    from mmcot_cli.data.images import record_image

    if cfg.records is not None:
        if split not in cfg.records:
            raise UsageError(f"no records given for split {split!r}")
        records = cfg.records[split]
    else:

        records = load_records(cfg.data_dir, split)
    items = []
    for rec in records:
        path = record_image(rec, cfg.images_dir)
        if path is not None:
            items.append((str(rec["qid"]), path))
    images = len(items)
    if cfg.limit is not None:  # a smoke run: the first N images, and the store says so (split_info's "limit")
        items = items[:cfg.limit]
    info = split_info(split, source, cfg.images_dir, len(records), [q for q, _ in items], cfg.chunk_size,
                      limit=cfg.limit, images=images)
    return _SplitPlan(split, items, info, cfg.chunk_size)


class _ImageDataset:
    """Items → (position, tensor | None, error | None); decoding and preprocessing run in the workers."""

    def __init__(self, items: list[tuple[str, str]], preprocess, alpha: str):
        self.items, self.preprocess, self.alpha = items, preprocess, alpha

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from mmcot_cli.data.images import ImageError, decode_image, image_digest, read_image_bytes, to_rgb

        qid, path = self.items[i]
        try:
            data = read_image_bytes(path, qid)
            pixels = self.preprocess(to_rgb(decode_image(data, path, qid), self.alpha))
            return i, pixels, None, image_digest(data)  # the digest: which image this row came from
        except ImageError as e:
            return i, None, e.reason, None
        except MMCoTError as e:  # a backbone's own refusal (an extreme aspect ratio): its words
            return i, None, str(e), None
        except Exception as e:  # a preprocessing failure is still this image's problem; name it
            return i, None, f"{type(e).__name__}: {e}", None


def _collate(samples):
    import torch

    good = [s for s in samples if s[1] is not None]
    shapes = {tuple(s[1].shape) for s in good}
    # Images of different sizes (detr keeps each image's own size, as the original) travel as a list.
    tensors = (torch.stack([s[1] for s in good]) if len(shapes) == 1 else [s[1] for s in good]) if good else None
    return [s[0] for s in good], tensors, [(s[0], s[2]) for s in samples if s[1] is None], [s[3] for s in good]


def _batches_within(sizes: list[int], batch_size: int) -> list[list[int]]:
    """Positions of a flat item list made of consecutive chunks of `sizes`, cut into batches inside each chunk
    (so a chunk's rows never depend on its neighbours)."""
    batches, start = [], 0
    for size in sizes:
        end = start + size
        batches.extend(list(range(b, min(b + batch_size, end))) for b in range(start, end, batch_size))
        start = end
    return batches


def _pending_chunks(root: Path, plans: list[_SplitPlan], shard: tuple[int, int]) -> tuple[list, int, list[str]]:
    """(split plan, chunk index) this run must write (its shard, not on disk yet, or holding a --skip-bad image
    that reads now), how many are skipped, and the truncated / corrupted data files removed so that their chunks
    are extracted again."""
    files, removed = scan_for_resume(root) if root.is_dir() else ([], [])
    done = {(e["split"], int(e["chunk"])) for f in files for e in f.entries} - retry_chunks(files)
    k, n = shard
    mine = [(plan, i) for plan in plans for i in range(plan.num_chunks) if i % n == k]
    pending = [(plan, i) for plan, i in mine if (plan.split, i) not in done]
    return pending, len(mine) - len(pending), removed


def _encode_all(cfg: ExtractConfig, backbone, encoder, pending, writer: ChunkWriter, alpha: str) -> None:
    """Run the encoder over every pending chunk's images and feed the rows to `writer` in order."""
    from torch.utils.data import DataLoader

    from mmcot_cli.data.images import ImageError

    chunks = [plan.chunk(i) for plan, i in pending]
    items = [item for chunk in chunks for item in chunk]
    workers = default_workers() if cfg.workers is None else cfg.workers
    loader = DataLoader(_ImageDataset(items, encoder.preprocess, alpha),
                        batch_sampler=_batches_within([len(c) for c in chunks], cfg.batch_size),
                        num_workers=workers, collate_fn=_collate, pin_memory=cfg.device.startswith("cuda"),
                        worker_init_fn=init_forked_worker if workers else None)
    shape = tuple(encoder.feature_shape)
    with progress.make_progress() as bar:
        task = bar.add_task(f"extract {backbone.name}", total=len(items))
        for positions, pixels, errors, digests in loader:
            results: dict[int, tuple[np.ndarray | None, str | None]] = {}
            for pos, reason in errors:
                if not cfg.skip_bad:
                    raise ImageError(items[pos][0], items[pos][1], reason)
                results[pos] = (None, reason)
            if pixels is not None:  # checked at the plugin boundary: a float tensor (B, *shape), finite
                out = plugins.encode_checked(backbone, encoder, pixels, shape,
                                             [f"qid {items[pos][0]}" for pos in positions])
                feats = out.detach().float().cpu().numpy()  # the writer converts to the store's dtype
                results.update((pos, (feats[j], None)) for j, pos in enumerate(positions))
            image_of = dict(zip(positions, digests))
            for pos in sorted(results):
                row, reason = results[pos]
                if reason is None:
                    writer.add(items[pos][0], row, image=image_of[pos])
                else:
                    writer.add_bad(items[pos][0], items[pos][1], reason)
            bar.advance(task, len(positions) + len(errors))


def extract(cfg: ExtractConfig) -> dict:
    """Extract features for cfg.splits into cfg.out (adding to / resuming an existing store); returns a summary.

    The store is held for the whole run: exclusively, or with --shard K/N shared with the other shards (each
    holding its own shard's lock), so N shard jobs fill one store side by side while any other writer is refused.
    """
    cfg.check_inputs()
    started = time.time()
    backbone = plugins.get_vision_backbone(cfg.backbone)
    shard = "{}-of-{}".format(*cfg.shard) if cfg.shard else None
    with claim_output_dir(cfg.out, "extract", inputs={"--data": cfg.data_dir, "--images": cfg.images_dir},
                          shard=shard):
        return _extract_held(cfg, backbone, started)


def _extract_held(cfg: ExtractConfig, backbone, started: float) -> dict:
    root = Path(cfg.out)
    device = parse_device(cfg.device)
    source = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else "(records given directly)"
    plans = [_plan_split(s, cfg, source) for s in cfg.splits]
    wanted = {"format": FORMAT, "backbone": backbone.name, "variant": cfg.variant or "", "dtype": cfg.dtype,
              "chunk_size": cfg.chunk_size, "alpha": resolve_alpha(cfg, backbone, root)}
    settled = list(wanted)  # what a rerun must match without building a model
    check_identity(root, wanted, settled)  # cheap checks before building a model
    for plan in plans:
        check_split_info(root, plan.info)
    pending, skipped, removed = _pending_chunks(root, plans, cfg.shard or (0, 1))
    for plan, i in pending:  # what a killed run of this shard left of these chunks
        remove_debris_of(root / "chunks" / f"{plan.split}-{i:05d}.safetensors")

    writer, loop_started = None, None
    if pending:
        encoder = plugins.build_vision_encoder(backbone, VisionBuildOptions(
            variant=cfg.variant, weights=cfg.weights, random_init=cfg.random_init, device=device))
        shape = tuple(int(x) for x in encoder.feature_shape)
        if not cfg.variant and shape != tuple(backbone.feature_shape):
            raise ShapeError(f"backbone {backbone.name} declares features {tuple(backbone.feature_shape)} but its "
                             f"encoder ({encoder.weights}) produces {shape}")
        wanted.update(weights=encoder.weights, feature_shape=list(shape))
        check_identity(root, wanted, ["weights", "feature_shape"])
        writer = ChunkWriter(root, shape, cfg.dtype, [(p.split, i, len(p.chunk(i))) for p, i in pending],
                             on_first_write=lambda: init_store(root, wanted, [p.info for p in plans]))
        loop_started = time.time()  # throughput excludes building the model
        _encode_all(cfg, backbone, encoder, pending, writer, wanted["alpha"])
    else:
        # Nothing left to extract (resumed, or no images in these splits): describe the store without a model.
        weights = cfg.weights or (RANDOM_INIT if cfg.random_init else backbone.default_weights)
        wanted.update(weights="" if backbone.weight_free else weights,
                      feature_shape=list(backbone.feature_shape))
    init_store(root, wanted, [p.info for p in plans], keys=settled)
    manifest = refresh_store_files(root)
    return {**_summary(cfg, backbone, manifest, plans, writer, skipped, started, loop_started),
            "reextracted_files": removed}


def _summary(cfg: ExtractConfig, backbone, manifest: dict, plans, writer: ChunkWriter | None, skipped: int,
             started: float, loop_started: float | None) -> dict:
    split_states = [manifest["splits"].get(p.split, {}) for p in plans]
    rows = writer.rows_written if writer else 0
    bad = writer.bad if writer else []
    return {
        "backbone": backbone.name, "variant": manifest.get("variant") or None, "weights": manifest.get("weights"),
        "alpha": manifest.get("alpha", LEGACY_IDENTITY["alpha"]),
        "split": ",".join(cfg.splits), "splits": list(cfg.splits),
        "count": sum(s.get("count", 0) for s in split_states),
        "shape": list(manifest["feature_shape"]), "dtype": manifest["dtype"], "path": str(Path(cfg.out)),
        "shard": "{}/{}".format(*cfg.shard) if cfg.shard else None, "extracted": rows,
        "chunks_written": writer.chunks_written if writer else 0, "chunks_skipped": skipped, "bad": bad,
        "complete": all(s.get("complete", False) for s in split_states),
        "limit": cfg.limit, "images_in_splits": {p.split: p.info.get("images", len(p.items)) for p in plans},
        "seconds": round(time.time() - started, 3),
        "images_per_second": (round((rows + len(bad)) / (time.time() - loop_started), 2)
                              if loop_started and rows else None),
    }


# ----------------------------------------------------------------------------------------------------- merge


def merge(path: str | os.PathLike, max_shard_bytes: int = MERGED_SHARD_BYTES) -> dict:
    """Compact a (sharded) store: whole chunks packed into shards/<split>-NNNNN.safetensors in chunk order.

    Every split must be complete. The result does not depend on how the chunks were produced (one run or N shard
    runs in any order), byte for byte. A crash midway leaves a readable store; rerunning finishes the job.
    """

    with claim_output_dir(path, "extract", option="--merge", elsewhere=False):
        return _merge_held(Path(path), max_shard_bytes)


def _merge_held(root: Path, max_shard_bytes: int) -> dict:
    store = open_store(root)
    incomplete = {s: i["missing_chunks"] for s, i in store.manifest["splits"].items() if not i["complete"]}
    if incomplete:
        desc = "; ".join(f"{s}: chunks {', '.join(map(str, m[:10]))}{' …' if len(m) > 10 else ''}"
                         for s, m in incomplete.items())
        raise DataError(f"{root}: cannot merge, missing {desc} (run the remaining --shard jobs first)")
    np_dtype = DTYPES[store.dtype][0]
    row_bytes = store.feature_shape[0] * store.feature_shape[1] * np.dtype(np_dtype).itemsize
    written, removed = [], []
    for split, chunks in store.chunks().items():
        groups: list[list] = [[]]
        size = 0
        for c in chunks:  # whole chunks per shard, a new shard once the size limit is reached
            n_bytes = len(c.entry["qids"]) * row_bytes
            if groups[-1] and size + n_bytes > max_shard_bytes:
                groups.append([])
                size = 0
            groups[-1].append(c)
            size += n_bytes
        names = [f"shards/{split}-{j:05d}.safetensors" for j in range(len(groups))]
        existing = {f.name for f in store.files if any(e["split"] == split for e in f.entries)}
        if existing == set(names) and all([e["chunk"] for e in store.file(nm).entries] == [c.chunk for c in g]
                                          for nm, g in zip(names, groups)):
            continue  # this split is already merged
        for name, group in progress.track(list(zip(names, groups)), f"merge {split}"):
            entries = [{"split": c.split, "chunk": c.chunk, "qids": c.entry["qids"], "bad": c.entry.get("bad", []),
                        **({"images": c.entry["images"]} if "images" in c.entry else {})} for c in group]
            write_data_file(root / name, np.concatenate([c.read() for c in group]).astype(np_dtype), entries)
            written.append(name)
        for old in sorted(existing - set(names)):
            (root / old).unlink(missing_ok=True)  # a concurrent merge may have removed it
            removed.append(old)
    store.close()
    manifest = refresh_store_files(root)
    return {"path": str(root), "backbone": manifest["backbone"], "count": manifest["count"],
            "shape": manifest["feature_shape"], "dtype": manifest["dtype"], "files_written": written,
            "files_removed": len(removed), "splits": sorted(manifest["splits"])}
