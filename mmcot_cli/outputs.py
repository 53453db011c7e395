"""Holding an output while it is written (what may be written is mmcot_cli.output_guard).

Writers hold their output for their whole life (`claim_output_dir` / `claim_output_file`): an exclusive advisory
lock (flock) on a lock file inside the folder (`.mmcot-lock`) or beside the file (`.NAME.mmcot-lock`). A second
writer gets one line naming the holder (OutputInUseError, exit 1). The kernel drops the lock when its process
ends, however it ends, so a lock FILE left behind by a killed writer never blocks anyone: only a held lock does.
With the lock held, the debris a killed writer of the same output left (the `.*.tmp` / `.*.old` names of the
atomic writers in mmcot_cli.io) is removed. Shards of one feature store (`extract --shard K/N`) share the store's
lock and each holds its own shard lock; see mmcot_cli.features.extract.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import signal
import socket
import stat
import time
from pathlib import Path
from typing import Iterator, Mapping

try:
    import fcntl
except ImportError:  # Windows: outputs are not locked there
    fcntl = None

from mmcot_cli.errors import TERMINATING_SIGNALS, DataError, MMCoTError
from mmcot_cli.io import NOFOLLOW, make_dir, os_reason, remove_path, sibling_stem
from mmcot_cli.output_guard import (
    DEBRIS,
    LOCK_MARK,
    OWNER_FILE,
    check_output_dir,
    check_output_file,
    folder_owner,
)

# --------------------------------------------------------------------------- who is writing an output (locks)

LOCK_FILE = ".mmcot-lock"
_TEMP_SUFFIX = r"[A-Za-z0-9_]{8}\.tmp"  # what tempfile.mkstemp adds: 8 random characters, then our suffix
_FILE_TEMP = re.compile(rf"\.(.+)\.{_TEMP_SUFFIX}")  # the temporary file of an atomic write of NAME
_HELD: dict[str, list] = {}  # lock file → [fd, shared, depth]: the locks this process holds (re-entrant)


class OutputInUseError(MMCoTError):
    """Another process is writing the output (it holds the output's lock)."""


def _holder_info(command: str) -> bytes:
    return (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": f"mmcot {command}",
                        "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n").encode()


def _read_holder(path: Path, fd: int | None = None) -> dict:
    try:
        raw = os.pread(fd, 4096, 0) if fd is not None else path.read_bytes()[:4096]
        info = json.loads(raw.decode("utf-8", "replace"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else {}


def _alive(info: dict) -> bool:
    if info.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process: cannot tell, assume it runs
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


def _describe_holder(lock_path: Path, fd: int) -> str:
    info = _read_holder(lock_path, fd)
    if not info and lock_path.name == LOCK_FILE:  # held shared (shards of a store): each shard lock names its holder
        for other in sorted(lock_path.parent.glob(f"{LOCK_FILE}-*")):
            candidate = _read_holder(other)
            if candidate and _alive(candidate):
                info = candidate
                break
    if not info:
        return "another mmcot process"
    host = f" on {info['host']}" if info.get("host") not in (None, socket.gethostname()) else ""
    return f"pid {info['pid']}{host} ({info.get('command', 'mmcot')}, since {info.get('since', '?')})"


def _open_lock(lock_path: Path, what: Path) -> int:
    """An fd of lock file `lock_path` (created if missing), which must be a plain file with one name: a symbolic
    link, FIFO, device or hard link planted in its place (to a file elsewhere) is never created through, truncated
    or written (the holder's description is written into the lock file), but refused with one line naming it."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{what}: lock file {lock_path} is a symbolic link; mmcot does not follow it "
                            "(remove the link)") from None
        raise DataError(f"{what}: cannot write ({os_reason(e)})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        what_it_is = "a hard link to another file" if stat.S_ISREG(info.st_mode) else "not a regular file"
        raise DataError(f"{what}: lock file {lock_path} is {what_it_is}; mmcot does not write through it "
                        "(remove it)")
    return fd


def _acquire(lock_path: Path, what: Path, option: str | None, shared: bool, wait: bool) -> int:
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    while True:
        fd = _open_lock(lock_path, what)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            holder = _describe_holder(lock_path, fd)
            os.close(fd)
            instead = f" or choose another {option}" if option else ""
            raise OutputInUseError(f"{what} is being written by {holder}; wait for it to end{instead}") from None
        except OSError as e:  # e.g. ENOLCK: a network file system without locking
            os.close(fd)
            raise DataError(f"{what}: cannot lock {lock_path.name} ({os_reason(e)})") from None
        try:  # its last holder may have removed the file between our open and flock: then lock the new one
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _release(fd: int, lock_path: Path, shared: bool) -> None:
    """Remove the lock file while still holding it exclusively (a process that opened it meanwhile finds it gone
    once it has the lock, and retries), then unlock. The last of several shared holders gets the exclusive lock
    and removes it; the others leave it."""
    try:
        if shared:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while another holder is left
        if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
            os.unlink(lock_path)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_lock(lock_path: str | os.PathLike, command: str, what: str | os.PathLike, *, option: str | None = "--out",
              shared: bool = False, wait: bool = False) -> Iterator[None]:
    """Hold `lock_path` (created if missing) for the block; OutputInUseError naming `what`, the holder and the
    `option` to choose another output with (None: there is none) if another process holds it (`wait`: block until
    it is free instead). Re-entrant within one process."""
    lock_path = Path(os.path.abspath(lock_path))
    held = _HELD.get(str(lock_path))
    if fcntl is None:
        yield
        return
    if held is not None:  # a command calling another command's library function on the same output
        if held[1] and not shared:
            raise MMCoTError(f"{what}: cannot take an exclusive lock while holding a shared one")
        held[2] += 1
        try:
            yield
        finally:
            held[2] -= 1
        return
    fd = _acquire(lock_path, Path(what), option, shared, wait)
    try:
        os.ftruncate(fd, 0)  # shared holders clear what a killed exclusive holder wrote
        if not shared:
            os.pwrite(fd, _holder_info(command), 0)
    except OSError:  # the holder's description is a courtesy (a full disk cannot take it)
        pass
    _HELD[str(lock_path)] = [fd, shared, 1]
    try:
        yield
    finally:
        del _HELD[str(lock_path)]
        _release(fd, lock_path, shared)


def drop_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): close its copies of the parent's lock file descriptors, so that a
    lock ends with the process that took it — a `kill -9` of the command included — instead of when its orphaned
    workers notice and exit. Closing a copy never unlocks the parent: a flock belongs to the open file, and lasts
    until its last descriptor is closed."""
    for fd, *_ in _HELD.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


def init_forked_worker(_worker_id: int = 0) -> None:
    """A DataLoader `worker_init_fn`. The worker ends at once on SIGTERM (the command's handler would raise
    mmcot_cli.errors.Terminated in it: a traceback per worker when `scancel` or `timeout` signal the whole process
    group), and holds none of its command's output locks (a requeued job right after `kill -9` would be refused
    until the orphaned workers noticed and exited)."""
    for name in TERMINATING_SIGNALS:  # SIGHUP to the process group (a closed terminal) alike
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    drop_inherited_locks()


def _missing_dirs(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first (removed again if left empty)."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    return missing


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


def remove_debris_of(path: str | os.PathLike) -> None:
    """Remove the temporary files a killed atomic write of `path` left beside it (.NAME.XXXXXXXX.tmp)."""
    path = Path(path)
    stem = sibling_stem(path)
    pattern = re.compile(rf"\.{re.escape(stem)}\.{_TEMP_SUFFIX}")
    for p in path.parent.glob(f".{glob.escape(stem)}.*.tmp") if path.parent.is_dir() else []:
        if pattern.fullmatch(p.name):
            remove_path(p)


def _unheld(lock: Path) -> bool:
    """No process holds lock file `lock` (then it is removed), or there is none."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC | NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return not lock.is_symlink()  # a planted link is no lock anybody holds, but it is not ours to remove
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(lock)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _sweep(folder: Path, own_lock: Path) -> None:
    """With the exclusive lock held: remove killed writers' debris in the folder tree (not inside another output
    nested in it, which its own writer cleans) and lock files no live process holds any more. A temporary file
    whose output file is still held (`.NAME.mmcot-lock`: a live writer of a file in here) is left alone."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        for name in list(dirs):
            if DEBRIS.fullmatch(name):
                remove_path(here / name)
                dirs.remove(name)
            elif (here / name / OWNER_FILE).is_file():
                dirs.remove(name)
        for name in files:
            writer = _FILE_TEMP.fullmatch(name)
            if DEBRIS.fullmatch(name) and (writer is None or _unheld(here / f".{writer[1]}{LOCK_MARK}")):
                (here / name).unlink(missing_ok=True)
            elif here == folder and LOCK_MARK in name and here / name != own_lock:
                _unheld(here / name)
    remove_debris_of(folder)  # a swap of the folder itself (atomic_dir) killed midway
    old = folder.parent / f".{sibling_stem(folder)}.old"
    if old.is_dir() or old.is_symlink():
        remove_path(old)


@contextlib.contextmanager
def claim_output_dir(path: str | os.PathLike, command: str, *, option: str = "--out",
                     inputs: Mapping[str, str | os.PathLike | None] | None = None,
                     shard: str | None = None, guard: bool = True, elsewhere: bool = True) -> Iterator[Path]:
    """Check output folder `path` (check_output_dir; `guard` False: the caller checked it), create it and hold its
    lock for the block.

    Exclusive, and a killed writer's debris is removed; with `shard` (extract --shard K/N) the folder's lock is
    shared with the other shards and the shard's own lock (`.mmcot-lock-<shard>`) is exclusive. `elsewhere`
    False: the refusal does not suggest another `option` (extract --merge works on the folder it names)."""
    if guard:
        check_output_dir(path, command, option=option, inputs=inputs)
    folder = Path(path)
    created = _missing_dirs(folder)
    make_dir(folder)
    try:
        with contextlib.ExitStack() as stack:
            label = f"{command} --shard {shard.replace('-of-', '/')}" if shard else command
            instead = option if elsewhere else None
            stack.enter_context(hold_lock(folder / LOCK_FILE, label, folder, option=instead, shared=bool(shard)))
            if shard:
                stack.enter_context(hold_lock(folder / f"{LOCK_FILE}-{shard}", label, folder, option=instead))
            if guard:  # another command may have written it between the check and the lock
                check_output_dir(path, command, option=option, inputs=inputs)
            if not shard:
                _sweep(folder, folder / LOCK_FILE)
            yield folder
    finally:
        _remove_empty(created)


@contextlib.contextmanager
def claim_output_file(path: str | os.PathLike, command: str, *, option: str = "--out",
                      inputs: Mapping[str, str | os.PathLike | None] | None = None) -> Iterator[Path]:
    """Check output file `path` (check_output_file) and hold its lock (`.NAME.mmcot-lock` beside it) for the
    block; inside an mmcot output folder (a RUN_DIR) also that folder's lock, shared."""
    check_output_file(path, command, option=option, inputs=inputs)
    path = Path(path)
    created = _missing_dirs(path.parent)
    make_dir(path.parent)
    try:
        with contextlib.ExitStack() as stack:
            if folder_owner(path.parent) is not None:
                stack.enter_context(hold_lock(path.parent / LOCK_FILE, command, path.parent, option=option,
                                              shared=True))
            lock = path.parent / f".{sibling_stem(path)}{LOCK_MARK}"
            stack.enter_context(hold_lock(lock, command, path, option=option))
            remove_debris_of(path)
            yield path
    finally:
        _remove_empty(created)
