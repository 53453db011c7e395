"""Error types. The library raises these; only the CLI turns them into one stderr line and an exit code."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


class MMCoTError(Exception):
    """A problem the user can fix (bad input, missing file). The message is one self-contained line."""

    exit_code = 1


class DataError(MMCoTError):
    """Malformed or inconsistent input data; the message names the file and line/qid."""


class UnknownNameError(MMCoTError):
    """A name (backbone, prompt format, split …) that is not registered; the message lists what exists."""

    exit_code = 2

    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, sorted(available)
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(self.available) or '(none)'}")


class UnknownBackboneError(UnknownNameError):
    pass


class UsageError(MMCoTError):
    """Inconsistent options."""

    exit_code = 2


class PluginError(MMCoTError):
    """A plugin misbehaved (its build, encode or hook raised, or returned something unusable); the message names
    the backbone and the plugin."""


class ShapeError(PluginError):
    """A backbone produced features of a shape other than it declares."""


class UnknownSplitError(UnknownNameError):
    """A split that DATA_DIR (or a problems.json) does not have; names where it looked and what is there."""

    def __init__(self, where: str, split: str, available: list[str]):
        super().__init__("split", split, available)
        self.args = (f"{where}: no split {split!r}; splits present: {', '.join(self.available) or '(none)'}",)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (library errors can be pages long), or its type name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextlib.contextmanager
def needs_library(package: str, purpose: str) -> Iterator[None]:
    """An import of a dependency that a broken or minimal install may lack: one line saying what needs it and
    how to install it, instead of a ModuleNotFoundError traceback."""
    try:
        yield
    except ImportError as e:
        missing = getattr(e, "name", None) or package
        raise MMCoTError(f"{purpose} needs the Python package {package} (cannot import {missing}); install it: "
                         f"pip install {package}") from None


def require_libraries(needs) -> None:
    """Import each (package, module, purpose) of `needs` now, under needs_library: a command that would meet a
    missing one only after minutes of work says so before any."""
    import importlib

    for package, module, purpose in needs:
        with needs_library(package, purpose):
            importlib.import_module(module)


def torch_load_problem(error: BaseException) -> str:
    """Why `torch.load(weights_only=True)` refused a file, in our words: torch's own first line advises retrying
    with weights_only=False, which would execute whatever code the pickle holds, so it is never repeated."""
    text = str(error)
    if "weights_only" not in text and "Weights only load failed" not in text:
        return first_line(error)
    detail = next((line.strip() for line in text.splitlines()[1:] if line.strip()
                   and "weights_only" not in line and "documentation" not in line), "")
    detail = detail.replace("Trying to load unsupported", "it holds").rstrip(".")
    return (f"a pickle with Python objects besides tensors{f' ({detail})' if detail else ''}; mmcot never runs "
            "pickled code: use a file holding tensors only (safetensors, or a state dict saved from a trusted "
            "copy)")


class StdoutError(MMCoTError):
    """Standard output cannot be written (closed pipe, `> /dev/full`)."""

    def __init__(self, error: OSError):
        reason = "broken pipe" if isinstance(error, BrokenPipeError) else (error.strerror or type(error).__name__)
        super().__init__(f"cannot write to standard output ({reason})")


# The signals that end a command as SIGTERM does (exit 143 after every cleanup); SIGHUP is absent on Windows.
TERMINATING_SIGNALS = tuple(name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's `scancel`, `kill`) or SIGHUP (the terminal or ssh session gone): raised in the main thread so that every `finally` runs —
    temporary files removed, child processes ended, locks released — then the command exits 143 (128 + 15),
    as Ctrl-C exits 130. A KeyboardInterrupt, so whatever cleans up after Ctrl-C cleans up after it too."""

    exit_code = 143

    @staticmethod
    def on_signal(signum, frame) -> None:
        """The SIGTERM and SIGHUP handler (signal.signal(SIGTERM, Terminated.on_signal)); a second one ends at
        once."""
        for name in TERMINATING_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        # DataLoader workers signalled with us (SIGTERM to the process group) die now; torch's SIGCHLD handler
        # would raise "worker killed by signal" in the middle of our unwinding (a traceback, exit 1)
        if hasattr(signal, "SIGCHLD"):  # not on Windows
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        raise Terminated()


def open_files_reason(e: BaseException) -> str | None:
    """For EMFILE / ENFILE (the open-files limit reached): which limit, and how to raise it; None otherwise."""
    import errno

    if getattr(e, "errno", None) == errno.ENFILE:
        return "too many open files in the system (the kernel's file table is full)"
    if getattr(e, "errno", None) != errno.EMFILE:
        return None
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return f"too many open files: the open-files limit (ulimit -n) is {soft}; raise it, or use fewer --workers"
