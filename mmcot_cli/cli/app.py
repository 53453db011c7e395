"""The Typer app and what every command shares: error handling, --json output, progress switch."""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Any, Callable

import typer
import typer.core

from mmcot_cli import progress
from mmcot_cli._version import __version__
from mmcot_cli.errors import MMCoTError, StdoutError, Terminated
from mmcot_cli.io import dumps, lone_surrogate, os_reason
from mmcot_cli.registry.environment import install_problem


class OrderedGroup(typer.core.TyperGroup):
    """Lists commands in `order` (the pipeline's), not registration order, which puts every sub-app last."""

    order: tuple[str, ...] = ()

    def list_commands(self, ctx) -> list[str]:
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))


HELP_WIDTH = 120  # --help in a pipe or file: Rich would assume 80 columns and cut long words with "…"


def _help_width() -> None:
    """--help written to a pipe or file at HELP_WIDTH columns (a terminal's own width, COLUMNS or TERMINAL_WIDTH
    win): at 80, typer's option tables cut flags and file names (`--no-generate-on…`, `preds-<split>.jso…`)."""
    import typer.rich_utils

    tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    if typer.rich_utils.MAX_WIDTH is None and not tty and not os.environ.get("COLUMNS"):
        typer.rich_utils.MAX_WIDTH = HELP_WIDTH


_help_width()

app = typer.Typer(
    name="mmcot",
    cls=OrderedGroup,
    help="Multimodal chain-of-thought toolkit: prepare ScienceQA, extract vision features, train the two-stage "
    "fusion model, generate and score.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        write_stdout(f"mmcot {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    progress.set_enabled(not quiet)


MAX_ERROR_CHARS = 400  # a library's message can be pages long (a model list): the line stays readable


def _shown(arg: str) -> str:
    """An argument as a message line shows it: control characters (a newline in a file name) as escapes."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in arg)


def _quoted_arguments(message: str) -> list[str]:
    """The command's arguments (paths, mostly) that `message` quotes as they are or escaped (repr), longest
    first."""
    found = set()
    for arg in sys.argv[1:]:
        if len(arg) > 1:
            found.update(form for form in (arg, _shown(arg)) if form in message)
    return sorted(found, key=len, reverse=True)


def escape_arguments(message: str) -> str:
    """`message` with the command's arguments it quotes shown with their control characters escaped (a folder
    named "a<newline>b" stays recognisable as "a\\nb" and on one line)."""
    message = str(message)
    for arg in _quoted_arguments(message):
        if arg != _shown(arg):
            message = message.replace(arg, _shown(arg))
    return message


def one_line(message: str) -> str:
    """`message` as one line (escape_arguments, then every run of white space one space), at most MAX_ERROR_CHARS
    characters beyond the arguments it quotes (a very long but legal path is never cut)."""
    quoted = sum(map(len, _quoted_arguments(str(message))))
    line = " ".join(escape_arguments(message).split()) or "failed"
    limit = MAX_ERROR_CHARS + quoted
    return line if len(line) <= limit else line[:limit - 1] + "…"


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, then exit with `code`."""
    line = one_line(message)
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def os_error_line(e: OSError) -> str:
    """One line for an OSError that escaped the library: the path it names and the reason."""

    if e.errno in (errno.EMFILE, errno.ENFILE):  # the cause is the limit, not a write or the file named
        return f"{e.filename}: {os_reason(e)}" if e.filename is not None else os_reason(e)
    if e.filename is not None:
        return f"{e.filename}: {os_reason(e)}"
    if isinstance(e, BrokenPipeError):
        silence_stdout()
        return str(StdoutError(e))
    return f"cannot write output ({os_reason(e)})"


class _ClosedStream:
    """Stands in for a standard stream whose file descriptor was closed (`>&-`): every write fails as EBADF."""

    encoding = "utf-8"

    def write(self, text):
        raise OSError(errno.EBADF, "closed")

    def flush(self):  # nothing is ever buffered; the interpreter flushes at exit
        return None

    def isatty(self):
        return False

    def fileno(self):
        raise OSError(errno.EBADF, "closed")


def fill_closed_streams() -> None:
    """A command started with stdin, stdout or stderr closed (`>&-`, `2>&-`): /dev/null takes each closed file
    descriptor 0-2, so no file the command opens later lands on fd 1 or 2 (a print would then write into it).
    A closed stderr just discards messages (the exit code still tells); a closed stdout stays an error when
    written (StdoutError: one line on stderr, exit 1), as a broken pipe is."""
    import fcntl

    closed = []
    for fd, modes in ((0, (os.O_RDONLY, os.O_RDWR)), (1, (os.O_WRONLY, os.O_RDWR)), (2, (os.O_WRONLY, os.O_RDWR))):
        try:  # closed, or reused by a file opened read-only before Python started (a shell wrapper's script)
            usable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE in modes
        except OSError:
            usable = False
        if not usable:
            closed.append(fd)
    for fd in closed:
        null = os.open(os.devnull, os.O_RDWR)  # often the closed descriptor itself (the lowest free one)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if 2 in closed or sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    if 1 in closed or sys.stdout is None:
        sys.stdout = _ClosedStream()


class GuardedStdout:
    """sys.stdout for the console entry point: a failed write or flush (closed pipe, `> /dev/full`) raises
    StdoutError, so Rich tables, typer.echo and help text all give the same one line, never a misattribution."""

    def __init__(self, stream):
        self.wrapped = stream

    def _guard(self, method: str, *args):
        try:
            return getattr(self.wrapped, method)(*args)
        except OSError as e:
            silence_stdout()
            raise StdoutError(e) from None

    def write(self, text):
        return self._guard("write", text)

    def flush(self):
        return self._guard("flush")

    def __getattr__(self, name):
        return getattr(self.wrapped, name)


def tolerate_narrow_streams() -> None:
    """On a stdout or stderr that cannot encode every character (PYTHONIOENCODING=ascii, or LC_ALL=C with
    PYTHONUTF8=0), what it cannot show is written as an escape (\\u2192) instead of ending the command with a
    UnicodeEncodeError. Rich consoles write through these streams (and pick ASCII boxes by their encoding)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text file (tests' StringIO), or already closed
            pass


def utf8_file_names() -> None:
    """Run as UTF-8 whatever the locale: under a locale whose file-name encoding is not UTF-8 (LC_ALL=C with
    PYTHONUTF8=0, an ISO-8859 locale) Python would take a UTF-8 file name apart (é as two surrogates: refused as
    "not valid UTF-8") and could not open a non-ASCII path read from a JSON file. The command is then started
    again, exactly as given (the arguments' own bytes), in Python's UTF-8 mode (PYTHONUTF8=1, also for its child
    processes); standard streams keep the encoding they had (narrow ones still get escapes)."""
    import codecs

    if os.name != "posix" or sys.flags.utf8_mode or not getattr(sys, "orig_argv", None):
        return
    if codecs.lookup(sys.getfilesystemencoding()).name == "utf-8":
        return
    stream = sys.stdout or sys.stderr
    env = {**os.environ, "PYTHONUTF8": "1"}
    if not env.get("PYTHONIOENCODING"):
        env["PYTHONIOENCODING"] = getattr(stream, "encoding", None) or "ascii"
    argv = [os.fsencode(a) for a in sys.orig_argv]
    os.execve(sys.executable, [argv[0], b"-X", b"utf8", *argv[1:]], {os.fsencode(k): os.fsencode(v)
                                                                     for k, v in env.items()})


def dash_path_hint(error: Exception) -> str:
    """For "No such option: -d" where the argument was a file name starting with a dash (`-data`): how to give
    it (./-data, or after --); else ""."""
    option = getattr(error, "option_name", None)
    if type(error).__name__ != "NoSuchOption" or not option:
        return ""
    for arg in sys.argv[1:]:
        if arg.startswith(option) and os.path.lexists(arg):
            return f"; {_shown(arg)!r} is a file: write ./{_shown(arg)} or put it after --"
    return ""


def non_utf8_argument(argv: list[str]) -> str | None:
    """The error line for the first command-line argument holding bytes that are not UTF-8 (Python keeps them as
    lone surrogates, which no JSON or text output can hold), or None."""
    for arg in argv:
        if lone_surrogate(arg) is not None:
            shown = arg.encode("utf-8", "backslashreplace").decode("utf-8")
            return (f"argument '{shown}' is not valid UTF-8 text (a file name with non-UTF-8 bytes?); mmcot records "
                    "paths and text as UTF-8: rename the file or fix the text")
    return None


def warn(message: str) -> None:
    typer.echo(f"warning: {escape_arguments(message)}", err=True)


def silence_stdout() -> None:
    """Point fd 1 at /dev/null once stdout failed, so later flushes (ours, the interpreter's at exit) cannot fail
    again or print "Exception ignored … BrokenPipeError"."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (tests' StringIO)
        pass


def write_stdout(text: str) -> None:
    """Write and flush stdout; a closed pipe or full device (`> /dev/full`) becomes one error line, exit 1."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as e:
        silence_stdout()
        raise StdoutError(e) from None


def stdout_is_utf8() -> bool:
    """Whether stdout encodes every character; JSON for one that does not writes \\u escapes (still valid JSON)."""
    import codecs

    try:
        return codecs.lookup(getattr(sys.stdout, "encoding", None) or "utf-8").name == "utf-8"
    except LookupError:
        return False


def print_json(obj: Any) -> None:
    write_stdout(dumps(obj, indent=2, ascii_only=not stdout_is_utf8()) + "\n")


def guarded(fn: Callable) -> Callable:
    """`fn` with library errors as one stderr line and the error's exit code (also for sub-app commands)."""

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        try:
            return fn(*args, **kw)
        except MMCoTError as e:
            fail(str(e), e.exit_code)
        except RecursionError:
            fail("input nested too deeply (a hostile or corrupted file?)", 1)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated): every cleanup has run by now
            interrupted(e)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as e:
            # The one place where every command's lazy imports of torch, torchvision, transformers … end up: a
            # broken install (a torchvision built for another torch) is one line naming the mismatch.
            line = install_problem(e)
            if line is not None:
                fail(line, 1)
            if isinstance(e, OSError):  # a file-system fault the library did not name: still one line, exit 1
                fail(os_error_line(e), 1)
            raise

    return wrapper


def interrupted(error: BaseException) -> None:
    """One stderr line and exit 130 (Ctrl-C) or 143 (SIGTERM)."""
    terminated = isinstance(error, Terminated)
    typer.echo("terminated" if terminated else "interrupted", err=True)
    raise typer.Exit(Terminated.exit_code if terminated else 130)


def command(name: str | None = None, **kwargs) -> Callable:
    """Register a Typer command whose library errors become one stderr line and the error's exit code."""

    def decorate(fn: Callable) -> Callable:
        app.command(name, **kwargs)(guarded(fn))
        return fn

    return decorate
