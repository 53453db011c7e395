"""Where ScienceQA's images are on disk, by qid: IMAGES/<qid>/, IMAGES/<split>/<qid>/ (the benchmark's download
layout), or any other folder of qid folders (images of a renamed or carved split are found by qid)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable, Mapping


def _choice_index(path: Path) -> int:
    try:
        return int(path.stem.split("_", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


@functools.lru_cache(maxsize=8)
def split_folders(images_dir: Path) -> tuple[Path, ...]:
    """The folders of IMAGES that hold qid folders (ScienceQA's train/, val/, test/ or any other names), found
    once: a qid folder holds image files only."""
    found = []
    with os.scandir(images_dir) as entries:
        for entry in entries:
            if entry.is_dir() and any(sub.is_dir() for sub in os.scandir(entry.path)):
                found.append(Path(entry.path))
    return tuple(sorted(found))


def _image_folders(images_dir: Path, qid: str, splits: Iterable[str]) -> list[Path]:
    """IMAGES/<qid>/ first, then ScienceQA's download layout IMAGES/<split>/<qid>/ (the problem's own split
    first, then any other folder of qid folders: images of a renamed split are found by qid)."""
    named = [images_dir / s for s in dict.fromkeys(s for s in splits if s)]
    others = [f for f in split_folders(images_dir) if f not in named]
    folders = [images_dir / qid] + [f / qid for f in named + others]
    return [f for f in folders if f.is_dir()]


def find_image_paths(images_dir: Path | None, qid: str, problem: Mapping,
                     splits: Iterable[str] = ()) -> tuple[list[str], Path | None]:
    """(image paths, expected question-image path if declared but missing).

    Question image when declared; otherwise the choice images (choice_0.png, …) in choice order; [] when none."""
    declared = problem.get("image")
    if images_dir is None:
        return [], (Path(declared) if declared else None)
    folders = _image_folders(images_dir, qid, splits)
    if declared:
        for folder in folders:
            if (folder / declared).is_file():
                return [str((folder / declared).resolve())], None
        return [], (folders[0] if folders else images_dir / qid) / declared
    for folder in folders:
        choice_images = sorted(folder.glob("choice_*.png"), key=_choice_index)
        if choice_images:
            return [str(p.resolve()) for p in choice_images], None
    return [], None
