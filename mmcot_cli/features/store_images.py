"""Which images a feature store's rows came from, checked by content (not by qid).

`mmcot extract` records in each chunk's header the digest of the image file every row was extracted from
(`images`: qid → mmcot_cli.data.images.image_digest). Readers that serve those rows for a DATA_DIR (generate,
train) compare them with the images the records name now: a store extracted from other images under the same
qids (another copy of the data, images replaced after extraction) is one error naming the qid and file instead
of features silently served for the wrong pictures. Stores written before digests existed, and imported features
(the original's detr.npy), have none and are not checked.

A chunk that holds `--skip-bad` items whose image is readable now is extracted again by the next extract run
(`retry_chunks`), so an image fixed after a skip is picked up.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from mmcot_cli.errors import DataError


def stored_digests(store) -> dict[str, str]:
    """qid → image digest for every row the store serves that has one."""
    digests: dict[str, str] = {}
    for chunks in store.chunks().values():
        for ref in chunks:
            digests.update(ref.entry.get("images") or {})
    return digests


def images_fingerprint(store, splits: Sequence[str]) -> str | None:
    """sha256 of (qid, image digest) of every row `splits` serve: what `train --resume` compares, so a store
    extracted again from other images under the same qids (same identity, same chunks) is not taken for the one
    the run trained on. None for a store without digests (imported features, stores older than digests)."""
    import hashlib
    import json

    chunks = store.chunks()
    digests = {}
    for split in splits:
        for ref in chunks.get(split, []):
            digests.update(ref.entry.get("images") or {})
    if not digests:
        return None
    return hashlib.sha256(json.dumps(sorted(digests.items())).encode()).hexdigest()


def check_store_images(store, records: Iterable[dict], split: str) -> int:
    """Raise DataError at the first record whose image file differs (by content) from the one its stored row was
    extracted from; returns how many images were compared. An image that is gone now is not compared (the
    features are what the run needs)."""
    from mmcot_cli.data.images import ImageError, image_digest, read_image_bytes, record_image

    digests = stored_digests(store)
    if not digests:
        return 0
    compared = 0
    for rec in records:
        qid = str(rec.get("qid"))
        path = record_image(rec) if qid in digests else None
        if path is None:
            continue
        try:
            now = image_digest(read_image_bytes(path, qid))
        except ImageError:
            continue
        compared += 1
        if now != digests[qid]:
            raise DataError(f"{store.path}: qid {qid} (split {split}): its features were extracted from another "
                            f"image than {path} holds now (the content differs: other images under the same "
                            "qids); extract the split again into a new --out, or pass the store made from "
                            "these images with --features")
    return compared


def retry_chunks(files: Sequence) -> set[tuple[str, int]]:
    """(split, chunk) of stored chunks holding a `--skip-bad` item whose image now reads and decodes."""
    from mmcot_cli.data.images import ImageError, open_image

    retry = set()
    for f in files:
        for entry in f.entries:
            for bad in entry.get("bad") or []:
                try:
                    open_image(bad["path"], str(bad.get("qid")))
                except (ImageError, KeyError, TypeError):
                    continue
                retry.add((entry["split"], int(entry["chunk"])))
                break
    return retry
