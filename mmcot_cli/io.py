"""File I/O shared by every command: atomic writes, JSON/JSONL reading with file:line errors."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from mmcot_cli.errors import DataError, first_line, open_files_reason


def _umask() -> int:
    os.umask(mask := os.umask(0))
    return mask


def uniform_modes(folder: str | os.PathLike) -> None:
    """Give a folder tree the modes of ordinary outputs: files 0666, folders 0777, both minus the umask."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), (0o777 if name in dirs else 0o666) & ~mask)


def os_reason(e: BaseException) -> str:
    """The short reason of an OSError ("No space left on device"; the open-files limit named), else the type."""
    return open_files_reason(e) or getattr(e, "strerror", None) or type(e).__name__


def write_fault(e: BaseException) -> str | None:
    """The reason, if `e` is a failed write: an OSError, text that cannot be UTF-8, or safetensors'
    SafetensorError wrapping an OSError ("I/O error: No space left on device (os error 28)"); None otherwise."""
    if isinstance(e, OSError):
        return os_reason(e)
    if isinstance(e, UnicodeEncodeError) and e.reason == "surrogates not allowed":
        # a path with non-UTF-8 bytes (Python keeps them as surrogates) or a lone surrogate cannot become UTF-8
        shown = str(e.object)[max(e.start - 40, 0):e.end + 10].encode("utf-8", "backslashreplace").decode()
        return f"{shown!r} is not valid UTF-8 text (a file name with non-UTF-8 bytes?)"
    text = str(e)
    if type(e).__name__ == "SafetensorError" and "I/O error" in text:
        return text.split("I/O error:", 1)[1].split("(os error", 1)[0].strip() or "I/O error"
    return None


# bytes: a name (ext4, xfs, btrfs, tmpfs), a whole path (Linux), the longest tag of a sibling (".XXXXXXXX.tmp")
_NAME_MAX, _PATH_MAX, _SIBLING_TAG = 255, 4095, 16


def sibling_stem(path: str | os.PathLike) -> str:
    """STEM of `.STEM.XXXXXXXX.tmp`, `.STEM.mmcot-lock`, `.STEM.old` beside `path`: its name, or where those would
    pass the name limit (255 bytes) the name cut at a character boundary plus a digest of the whole name."""
    import hashlib

    path, raw = Path(path), os.fsencode(Path(path).name)
    room = min(_NAME_MAX, _PATH_MAX - len(os.fsencode(str(path.parent))) - 1) - 1 - _SIBLING_TAG
    if len(raw) <= room:
        return path.name
    return (raw[:max(room - 13, 1)].decode("utf-8", "ignore") or "x") + "~" + hashlib.sha256(raw).hexdigest()[:12]


def make_dir(path: str | os.PathLike) -> Path:
    """`mkdir -p`; a path blocked by a file, or not writable, raises DataError naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path}: cannot create directory ({e.strerror or type(e).__name__})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{sibling_stem(path)}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DataError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
        os.chmod(path, 0o666 & ~_umask())  # writers that recreate the file (safetensors) may not keep the mode
    except Exception as e:  # ENOSPC, EACCES, EROFS … while writing: one line naming the output, no partial file
        reason = write_fault(e)
        if reason is None:
            raise
        raise DataError(f"{path}: cannot write ({reason})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temp file beside `path` for writing; it replaces `path` only when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf) replaced by None, so it serialises as strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = None, ascii_only: bool = False) -> str:
    """Strict JSON text (no NaN/Infinity literals: non-finite floats become null). Every writer uses this.
    `ascii_only`: non-ASCII characters as \\u escapes (JSON for a stdout that cannot encode them)."""
    return json.dumps(json_safe(obj), ensure_ascii=ascii_only, indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    text = dumps(obj, indent=2) + "\n"
    with atomic_open(path) as fh:
        fh.write(text)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    return n


# Appends and removals never follow a symbolic link planted in place of a log or a temporary file.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one strict-JSON line (logs such as metrics.jsonl); a write fault names the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | NOFOLLOW, 0o666)
        with open(fd, "a", encoding="utf-8") as fh:
            fh.write(dumps(row) + "\n")
            fh.flush()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{path}: is a symbolic link; mmcot does not append through it (remove it)") from None
        raise DataError(f"{path}: cannot write ({write_fault(e)})") from None
    except UnicodeEncodeError as e:
        raise DataError(f"{path}: cannot write ({write_fault(e)})") from None


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file, a symbolic link (never what it points to) or a folder tree; errors are ignored."""
    import shutil

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]}{'…' if len(text) > 20 else ''} is out of range")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate(obj: Any) -> str | None:
    """The first lone surrogate (U+D800–U+DFFF) in a string or key of a parsed JSON value, written as an escape
    ("\\udc80"), or None. JSON can escape one, but it is not Unicode text: no UTF-8 file can hold it, so every
    writer would fail on it later."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return f"\\u{ord(found.group()):04x}"
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _surrogate_error(text: str, obj: Any, where: str, one_line: bool) -> DataError | None:
    escape = lone_surrogate(obj) if _SURROGATE_ESCAPE.search(text) else None
    if escape is None:
        return None
    at = max(text.lower().find(escape), 0)
    line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    return DataError(f"{where}:{col if one_line else f'{line}:{col}'}: lone surrogate {escape} in a string "
                     "(not valid Unicode text)")


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def loads(text: str, where: str, one_line: bool = False, surrogates: bool = False, unique_keys: bool = False) -> Any:
    """Parse JSON text strictly and safely; any problem is a DataError starting with `where` (file or file:line).

    Rejects NaN/Infinity literals, numbers beyond float range (1e999) or Python's int digit limit, and nesting
    deeper than the interpreter's recursion limit (one line, not a RecursionError traceback), and lone surrogates
    escaped in strings ("\\udc80"), unless `surrogates` (a reader that checks item by item, so --skip-bad can skip
    the one item holding it: see `lone_surrogate`). `one_line`: `where` already names the line (file:line), so an
    error adds only the column. `unique_keys`: a key given twice in one object is an error naming it (json keeps
    the last one silently; in a results JSON that is a qid answered twice)."""
    try:
        obj = json.loads(text, parse_constant=reject_constant, parse_float=finite_float,
                         object_pairs_hook=_unique_pairs if unique_keys else None)
    except _DuplicateKey as e:
        raise DataError(f"{where}: key {str(e.args[0])[:80]!r} appears twice in one JSON object (which one is "
                        "meant? remove one)") from None
    except json.JSONDecodeError as e:
        position = f"{e.colno}" if one_line else f"{e.lineno}:{e.colno}"
        raise DataError(f"{where}:{position}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply (refusing to parse)") from None
    except ValueError as e:  # int digit limit, out-of-range float, NaN literal
        reason = "an integer with too many digits" if "digits" in str(e) else first_line(e)[:120]
        raise DataError(f"{where}: invalid JSON: {reason}") from None
    error = None if surrogates else _surrogate_error(text, obj, where, one_line)
    if error is not None:
        raise error
    return obj


def open_input(path: str | os.PathLike, expected: str = "file"):
    """A binary file object of input `path`; missing, a directory, unreadable, or not a regular file (a FIFO or
    device: checked before opening, which would wait for a writer for ever) raises DataError naming it."""
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DataError(f"{path}: not a regular file ({'a FIFO' if stat.S_ISFIFO(mode) else 'a device or socket'}"
                            f"); give the {expected} itself (copy what a pipe carries into a file first)")
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a {expected}") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None


def read_text(path: str | os.PathLike, expected: str = "file") -> str:
    """A whole UTF-8 file; a missing, unreadable or non-text file raises DataError naming it."""
    path = Path(path)
    with open_input(path, expected) as fh:
        data = fh.read()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not content
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_json(path: str | os.PathLike, surrogates: bool = False) -> Any:
    """Load a JSON file; a syntax error names the file, line and column (`surrogates`: see `loads`)."""
    return loads(read_text(path, "JSON file"), str(Path(path)), surrogates=surrogates)


class JsonlLine(NamedTuple):
    """One non-blank line of a JSONL file: its number, "file:line", the parsed value (any JSON type) or, for a
    line that cannot be used (not UTF-8, invalid JSON, a lone surrogate), the error saying why."""

    lineno: int
    where: str
    value: Any
    error: DataError | None
    ended: bool = True  # the line ends with its "\\n" (only a file's last line can lack it: an append cut short)


def _open_lines(path: Path, expected: str) -> Iterator[bytes]:
    """The binary lines of a file (they end at b"\\n" only); opening it is checked before the first line."""
    with open_input(path, expected) as fh:  # decoded line by line: a non-UTF-8 line is reported with its number
        yield from fh  # binary lines end at b"\n" only


def jsonl_lines(path: str | os.PathLike, expected: str = "JSONL file", text: str | None = None
                ) -> Iterator[JsonlLine]:
    """Every non-blank line of a JSONL file (or of its already-read `text`), parsed: THE line reader of every
    JSONL input. Lines end at "\\n" only, never where str.splitlines() would also break (U+2028, U+2029, U+0085,
    form feeds …: valid inside JSON strings); a leading byte-order mark is dropped. A missing or unreadable file
    raises DataError; a bad line is yielded with its error, so a --skip-bad caller can skip just that line."""
    path = Path(path)
    lines = _open_lines(path, expected) if text is None else iter(text.split("\n"))
    for lineno, line in enumerate(lines, start=1):
        where = f"{path}:{lineno}"
        ended = text is not None or line.endswith(b"\n")
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield JsonlLine(lineno, where, None,
                                DataError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})"), ended)
                continue
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            yield JsonlLine(lineno, where, loads(line, where, one_line=True), None, ended)
        except DataError as e:
            yield JsonlLine(lineno, where, None, e, ended)


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for each non-blank line; a bad line raises DataError naming file:line."""
    for line in jsonl_lines(path):
        if line.error is not None:
            raise line.error
        if not isinstance(line.value, dict):
            raise DataError(f"{line.where}: expected a JSON object, got {type(line.value).__name__}")
        yield line.lineno, line.value


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def read_log(path: str | os.PathLike) -> tuple[list[dict], bool]:
    """(rows, torn) of an append-only JSONL log (metrics.jsonl). A last line without its newline was cut short —
    the writer was killed, the machine lost power mid-append (partial text, NUL bytes), or it is still
    appending — and is left out unless it parses (torn True). Any complete line that is bad is an error naming
    file:line, as in any JSONL file."""
    rows = []
    for line in jsonl_lines(path, "log file"):
        error = line.error
        if error is None and not isinstance(line.value, dict):
            error = DataError(f"{line.where}: expected a JSON object, got {type(line.value).__name__}")
        if error is not None:
            if not line.ended:  # the unterminated tail: torn
                return rows, True
            raise error
        rows.append(line.value)
    return rows, False


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; it becomes `path` only if the block succeeds.

    With replace=True an existing `path` is swapped out (moved aside, then deleted) after success. A write fault
    inside the block (ENOSPC, EACCES …) is one DataError naming `path`, and the temporary directory is removed.
    """
    import shutil

    path = Path(path)
    make_dir(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{sibling_stem(path)}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise DataError(f"{path}: cannot write ({os_reason(e)})") from None
    try:
        yield tmp
        uniform_modes(tmp)  # mkdtemp makes 0700; some writers (safetensors via transformers) make 0600
        if path.exists():
            if not replace:
                raise FileExistsError(f"{path}: already exists")
            old = path.with_name(f".{sibling_stem(path)}.old")
            remove_path(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        raise
    except DataError as e:  # a writer inside the block named its temporary path: name the output instead
        if str(tmp) not in str(e):
            raise
        raise DataError(str(e).replace(str(tmp), str(path))) from None
    except Exception as e:
        reason = write_fault(e)
        if reason is None:
            raise
        raise DataError(f"{path}: cannot write ({reason})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder inside `folder`; files written there are renamed into `folder` together only when
    the block succeeds (renames need no space), so a failure leaves none of them. Other files in `folder` stay."""
    import shutil

    folder = make_dir(folder)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".staged.", suffix=".tmp", dir=folder))
    except OSError as e:
        raise DataError(f"{folder}: cannot write ({os_reason(e)})") from None
    try:
        yield stage
        for item in sorted(stage.iterdir()):
            os.replace(item, folder / item.name)
    except OSError as e:
        raise DataError(f"{folder}: cannot write ({os_reason(e)})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (provenance of checkpoints and rationale files)."""
    import hashlib

    digest = hashlib.sha256()
    with open_input(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
