"""A demo rerun keeps the earlier output until the new one has finished.

Inside the output folder's lock the earlier output is set aside in the folder itself (OUT/.mmcot-previous, the
same file system, so every move is a rename) and the new run is built at OUT, where the paths it records (a run's
data and features folders) stay true. Success removes the earlier output; a failure or an interruption (Ctrl-C,
SIGTERM) removes what the new run wrote and puts the earlier output back. A run killed outright (kill -9) leaves
both; the next demo into OUT puts them in order before it starts (`recover`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from mmcot_cli.errors import DataError
from mmcot_cli.io import os_reason, remove_path
from mmcot_cli.output_guard import is_housekeeping

PREVIOUS = ".mmcot-previous"  # the earlier output, whole
STAGING = ".mmcot-previous.part"  # the earlier output while it is being set aside (it becomes PREVIOUS at once)


def _entries(folder: Path, keep: tuple[str, ...]) -> list[Path]:
    return [p for p in folder.iterdir() if not is_housekeeping(p.name) and p.name not in (PREVIOUS, STAGING, *keep)]


def _move_all(src: Path, dst: Path, keep: tuple[str, ...] = ()) -> None:
    for entry in _entries(src, keep):
        os.replace(entry, dst / entry.name)


def _clear(folder: Path, keep: tuple[str, ...]) -> None:
    for entry in _entries(folder, keep):
        remove_path(entry)


def _restore(out: Path, previous: Path, keep: tuple[str, ...]) -> None:
    """What the new run wrote removed, the earlier output back in its place."""
    _clear(out, keep)
    _move_all(previous, out)
    remove_path(previous)


def recover(out: Path, summary: str, keep: tuple[str, ...] = ()) -> None:
    """Put OUT in order after a rerun killed outright: killed while setting the earlier output aside (the new run
    never started), or during the new run (the earlier output back), or after it finished (the earlier one goes)."""
    staging, previous = out / STAGING, out / PREVIOUS
    if staging.is_dir() and not staging.is_symlink():
        _move_all(staging, out)
        remove_path(staging)
    if previous.is_dir() and not previous.is_symlink():
        if (out / summary).is_file():  # `summary` is written last: the new run completed
            remove_path(previous)
        else:
            _restore(out, previous, keep)


@contextlib.contextmanager
def kept_until_done(out: Path, summary: str, keep: tuple[str, ...] = ()) -> Iterator[None]:
    """With OUT's lock held: set the earlier output aside (all but the names in `keep`, e.g. the demo marker),
    run the block, then drop the earlier output (success) or put it back (any exception)."""
    staging, previous = out / STAGING, out / PREVIOUS
    try:
        recover(out, summary, keep)
        held = bool(_entries(out, keep))
        if held:
            staging.mkdir()
            _move_all(out, staging, keep)
            os.replace(staging, previous)
    except OSError as e:
        raise DataError(f"{out}: cannot set the earlier demo output aside ({os_reason(e)})") from None
    try:
        yield
    except BaseException:
        if held:
            _restore(out, previous, keep)
        raise
    if held:
        remove_path(previous)
