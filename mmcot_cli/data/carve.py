"""Splits you can make: one prepared split carved into train/val/test, seeded and stratified (`prepare --carve`).

For a set that comes with one split only (a held-out file, lmms-lab's evaluation splits). Stratified by subject,
grade and whether the item has an image, where those fields are filled: records are shuffled with the seed, ordered
by stratum, and dealt to the parts in proportion (each next record goes to the part furthest below its share), so
every part gets each stratum's share and the part sizes are exact. The DATA_DIR manifest records the carve
(`carved_from`, `official_splits: false`), so `report` never puts a benchmark's published rows beside it.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.io import read_json

PARTS = ("train", "val", "test")
DEFAULT_SHARES = (80, 10, 10)
STRATA = ("subject", "grade", "image")
_SPEC = re.compile(r"(?P<split>[^:]+)(:(?P<shares>[0-9.]+/[0-9.]+/[0-9.]+))?")


@dataclass(frozen=True)
class Carve:
    """Carve split `split` into train/val/test in proportion to `shares`, shuffled with `seed`."""

    split: str
    shares: tuple[float, float, float] = DEFAULT_SHARES
    seed: int = 0

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> "Carve":
        """`SPLIT` or `SPLIT:TRAIN/VAL/TEST` (shares, e.g. test:80/10/10)."""
        match = _SPEC.fullmatch(text.strip())
        if not match:
            raise UsageError(f"--carve {text!r}: expected SPLIT or SPLIT:TRAIN/VAL/TEST, e.g. test:80/10/10")
        shares = tuple(float(x) for x in match["shares"].split("/")) if match["shares"] else DEFAULT_SHARES
        if sum(shares) <= 0:
            raise UsageError(f"--carve {text!r}: the shares add up to 0")
        return cls(match["split"], shares, seed)  # type: ignore[arg-type]

    def fractions(self) -> dict[str, float]:
        total = sum(self.shares)
        return {part: share / total for part, share in zip(PARTS, self.shares) if share > 0}


def _stratum(record: dict, fields: tuple[str, ...]) -> tuple:
    return tuple(bool(record.get("image_paths") or record.get("image")) if f == "image" else str(record.get(f) or "")
                 for f in fields)


def strata_fields(records: list[dict]) -> tuple[str, ...]:
    """The stratum fields these records fill (a field empty or constant everywhere does not stratify)."""
    return tuple(f for f in STRATA if len({_stratum(r, (f,)) for r in records}) > 1)


def carve_records(records: list[dict], carve: Carve) -> tuple[dict[str, list[dict]], dict]:
    """({part: records, split field renamed}, the manifest's `carved_from`). Every part gets at least one record."""
    fractions = carve.fractions()
    if len(records) < len(fractions):
        raise DataError(f"--carve {carve.split}: {len(records)} records cannot fill {len(fractions)} parts")
    fields = strata_fields(records)
    shuffled = list(records)
    random.Random(carve.seed).shuffle(shuffled)
    ordered = sorted(shuffled, key=lambda r: _stratum(r, fields))  # stable: shuffled within each stratum
    parts: dict[str, list[dict]] = {part: [] for part in fractions}
    for k, record in enumerate(ordered):
        part = max(fractions, key=lambda p: fractions[p] * (k + 1) - len(parts[p]))
        parts[part].append({**record, "split": part})
    empty = [p for p, rows in parts.items() if not rows]
    if empty:
        raise DataError(f"--carve {carve.split}: {len(records)} records leave part {empty[0]} empty")
    info = {"split": carve.split, "shares": dict(zip(PARTS, carve.shares)), "seed": carve.seed,
            "strata": list(fields), "counts": {p: len(rows) for p, rows in parts.items()}}
    return parts, info


def splits_note(data: str | os.PathLike) -> str | None:
    """What DATA_DIR's manifest says against its splits being the source's official ones, as one line for `score`
    and `train` (a --carve; Hub rows whose original qids were not recovered); None when it says nothing of the
    kind, or DATA is no DATA_DIR (a problems.json)."""
    path = Path(data) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = read_json(path)
    except (DataError, OSError):
        return None  # the command reading DATA_DIR names what is wrong with it
    if not isinstance(manifest, dict) or manifest.get("official_splits") is not False:
        return None
    carved = manifest.get("carved_from")
    if isinstance(carved, dict):
        shares = carved.get("shares") or {}
        cut = "/".join(f"{shares[p]:g}" if isinstance(shares[p], (int, float)) else str(shares[p])
                       for p in PARTS if p in shares)
        strata = ", ".join(carved.get("strata") or []) or "nothing"
        return (f"splits carved from {carved.get('split')!r} by `prepare --carve` ({cut}, seed {carved.get('seed')}, "
                f"stratified by {strata}): not the source's official splits")
    return ("qids are Hub row numbers (prepared without --problems): not matched to ScienceQA's official "
            "splits, so no published rows apply")
