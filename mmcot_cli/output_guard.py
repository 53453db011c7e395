"""Output guard: what a command may write to, checked before any work starts, and who wrote each output folder.

Every output folder gets a marker file (OWNER_FILE, `{"created_by": …, "command": …, "kind": …}`). A command
writes only into a new or empty folder, or one of its own kind (a rerun, a resume); never into the inputs it
reads, a folder that contains them, or a DATA_DIR / feature store written by another command. Folders written
before markers existed are recognised by their own files (manifest.json, run_config.json, the demo marker).

Commands call `check_output_dir` / `check_output_file` with their inputs, then `mark_output_dir` once the folder
exists. Refusals are UsageError (exit 2) naming the option, the output and the thing it collides with. Holding an
output while writing it (locks, debris) is mmcot_cli.outputs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping

from mmcot_cli._version import __version__
from mmcot_cli.errors import UsageError
from mmcot_cli.io import write_json

LOCK_MARK = ".mmcot-lock"  # in every lock file's name: the folder's, a shard's, a file's (.NAME.mmcot-lock)
# What the atomic writers (mmcot_cli.io, checkpoints) leave when killed: .NAME.XXXXXXXX.tmp files and folders,
# .staged.XXXXXXXX.tmp, checkpoints/.step-N.tmp, and .NAME.old (a folder being swapped out).
DEBRIS = re.compile(r"\..+\.(tmp|old)")


def is_housekeeping(name: str) -> bool:
    """A lock file or a killed writer's debris: not content of an output folder."""
    return (name.startswith(".") and LOCK_MARK in name) or bool(DEBRIS.fullmatch(name))


def has_content(folder: str | os.PathLike) -> bool:
    """The folder exists and holds something besides lock files and debris."""
    folder = Path(folder)
    return folder.is_dir() and any(not is_housekeeping(p.name) for p in folder.iterdir())


OWNER_FILE = ".mmcot-output.json"

# command → kind of folder it writes; commands of one kind may continue each other's folders.
KINDS = {
    "prepare": "data", "import-data": "data",
    "extract": "features", "import-features": "features",
    "train": "run", "import-run": "run",
    "demo": "demo",
    "report": "report", "compare": "report",
}
# Folders whose contents other commands read as inputs: nothing else is written inside them.
INPUT_KINDS = {"data", "features"}


def kind_of(command: str) -> str:
    return KINDS.get(command, command)


def _read_small_json(path: Path) -> dict:
    try:
        if path.stat().st_size > 1 << 20:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def folder_owner(path: str | os.PathLike) -> tuple[str, str] | None:
    """(command, kind) that wrote folder `path`, or None for a folder no mmcot command wrote."""
    path = Path(path)
    if not path.is_dir():
        return None
    marker = _read_small_json(path / OWNER_FILE)
    if marker.get("command"):
        command = str(marker["command"])
        return command, str(marker.get("kind") or kind_of(command))
    # Folders written before the marker existed.
    if (path / ".mmcot-demo").exists():
        return "demo", "demo"
    if (path / "run_config.json").is_file() or (path / "model" / "config.json").is_file() \
            or (path / "checkpoints").is_dir():  # a run that stopped before writing run_config.json
        return "train", "run"
    manifest = _read_small_json(path / "manifest.json") if (path / "manifest.json").is_file() else {}
    if "backbone" in manifest and "feature_shape" in manifest:
        return "extract", "features"
    if "prepare" in str(manifest.get("created_by", "")) or (manifest and "pid_splits" in manifest):
        return "prepare", "data"
    return None


def mark_output_dir(path: str | os.PathLike, command: str) -> None:
    """Record that `command` wrote folder `path` (kept if already there)."""

    path = Path(path)
    if (path / OWNER_FILE).is_file():
        return
    write_json(path / OWNER_FILE, {"created_by": f"mmcot {__version__} {command}", "command": command,
                                   "kind": kind_of(command)})


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_not_input(out: Path, option: str, inputs: Mapping[str, str | os.PathLike | None]) -> None:
    for label, given in inputs.items():
        if given is None:
            continue
        inp = _resolved(given)
        same = out.exists() and inp.exists() and os.path.samefile(out, inp)
        if same or _is_within(inp, out):
            what = "is" if same or out == inp else "contains"
            raise UsageError(f"{option} {out} {what} the input {label} {given}; choose another {option}")


def _check_not_inside_input_folder(out: Path, option: str, command: str) -> None:
    for parent in out.parents:
        owner = folder_owner(parent)
        if owner and owner[1] in INPUT_KINDS and owner[1] != kind_of(command):
            raise UsageError(f"{option} {out} is inside {parent}, written by `mmcot {owner[0]}`; "
                             f"`mmcot {command}` does not write into it")


def check_output_dir(path: str | os.PathLike, command: str, *, option: str = "--out",
                     inputs: Mapping[str, str | os.PathLike | None] | None = None) -> None:
    """Refuse an output folder that is a file, an input (or holds one), or another command's folder.

    A new or empty folder, or one written by a command of the same kind, is accepted."""
    out = _resolved(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {path}: exists and is not a directory")
    _check_not_input(out, option, inputs or {})
    _check_not_inside_input_folder(out, option, command)
    if not has_content(out):
        return
    owner = folder_owner(out)
    if owner is None:
        raise UsageError(f"{option} {path}: exists, is not empty and was not written by `mmcot {command}`; "
                         f"choose a new folder")
    if owner[1] != kind_of(command):
        raise UsageError(f"{option} {path} was written by `mmcot {owner[0]}`; `mmcot {command}` does not "
                         f"write into it; choose another {option}")


def check_output_file(path: str | os.PathLike, command: str, *, option: str = "--out",
                      inputs: Mapping[str, str | os.PathLike | None] | None = None) -> None:
    """Refuse an output file that is a directory, an input file, or inside a DATA_DIR / feature store."""
    out = _resolved(path)
    if out.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a file path")
    _check_not_input(out, option, inputs or {})
    _check_not_inside_input_folder(out, option, command)


def input_files(folder: str | os.PathLike | None, names: Iterable[str]) -> dict[str, Path]:
    """{label: path} for files a command reads from `folder` (for the `inputs` of the checks above)."""
    if folder is None:
        return {}
    return {f"{Path(folder) / n}": Path(folder) / n for n in names}
