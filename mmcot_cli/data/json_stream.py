"""One big JSON object read member by member, in bounded memory: ScienceQA's problems.json (qid → problem) at any
size, and the same file when `score` reads it as gold data.

Why not a streaming-parser package (ijson): each member's value is decoded by the standard library's own C
scanner (json.JSONDecoder.raw_decode) with the hooks every other reader of mmcot uses (mmcot_cli.io.loads: no
NaN/Infinity, no number beyond float range, Python's int digit limit, a nesting limit), so a problem means the
same thing and fails with the same words whether the file is read whole or streamed; floats stay floats (ijson
gives Decimal), positions are line:column as everywhere else, and nothing new must be installed (ijson's
pure-Python fallback, where its C backend does not build, is many times slower). Only the top level — `{`,
keys, `:`, `,`, `}` — is parsed here.

Memory: the buffer holds what has been read but not yet consumed (1 MiB blocks; a value larger than a block
grows it to that value's size), never the whole file. A file that ends inside the object — cut short, or
truncated while it is read — is one DataError naming file:line:column and the byte where it ended; so is one
whose size or modification time changed between opening it and reaching its end.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from mmcot_cli.errors import DataError, first_line
from mmcot_cli.io import finite_float, open_input, reject_constant

BLOCK = 1 << 20  # bytes read at a time
_SPACE = re.compile(r"[ \t\n\r]*")
_NEAR_END = 8  # a decode error this close to the end of the buffer may be a value cut by the block boundary
# What a decode error's position may be followed by when the text was cut there (at the end of the file): a
# literal, a number or a \\u escape begun and not finished.
_UNFINISHED = re.compile(r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|[-+.eE0-9]+|u[0-9a-fA-F]{0,3}|[ \t\n\r]*")


_DECODER = json.JSONDecoder(parse_constant=reject_constant, parse_float=finite_float)  # as mmcot_cli.io.loads


class _Reader:
    """The unread text of a file, one block at a time, with the line and column of any position in it."""

    def __init__(self, path: Path, fh):
        self.path, self.fh = path, fh
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof = "", 0, False
        self.bytes_read = 0
        self.lines_before = 0  # newlines in the text dropped from the front of buf
        self.col_before = 0  # characters after the last dropped newline (the column buf[0] continues)

    def fill(self, at_least: int = 0) -> bool:
        """Read one more block (or `at_least` bytes, if more) (False at the end of the file)."""
        if self.eof:
            return False
        self._compact()
        data = self.fh.read(max(BLOCK, at_least))
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise DataError(f"{self.path}: not UTF-8 text ({e.reason} near byte {self.bytes_read + e.start})"
                            ) from None
        if self.bytes_read == 0:
            text = text.removeprefix("\ufeff")  # a byte-order mark is not content
        self.bytes_read += len(data)
        self.buf += text
        self.eof = not data
        return bool(data)

    def _compact(self) -> None:
        if self.pos == 0:
            return
        dropped = self.buf[:self.pos]
        newline = dropped.rfind("\n")
        self.lines_before += dropped.count("\n")
        self.col_before = len(dropped) - newline - 1 if newline >= 0 else self.col_before + len(dropped)
        self.buf, self.pos = self.buf[self.pos:], 0

    def where(self, at: int) -> str:
        line = self.lines_before + self.buf.count("\n", 0, at) + 1
        newline = self.buf.rfind("\n", 0, at)
        col = at - newline if newline >= 0 else self.col_before + at + 1
        return f"{self.path}:{line}:{col}"

    def ended(self, inside: str) -> DataError:
        return DataError(f"{self.where(len(self.buf))}: the file ends at byte {self.bytes_read}, inside {inside}: "
                         f"cut short, or truncated while it was read")

    def peek(self, inside: str) -> str:
        """The next non-space character (not consumed); the end of the file inside the object is an error."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                raise self.ended(inside)

    def value(self, inside: str) -> Any:
        """Decode the JSON value at the current position, reading more until it is whole."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                error = DataError(f"{self.where(e.pos)}: invalid JSON: {e.msg}")
                if e.pos >= len(self.buf) - _NEAR_END or e.msg.startswith("Unterminated string"):
                    cut_short = _cut_short(self.buf, e)  # (fill moves the text: look before)
                    if self.fill(2 * (len(self.buf) - self.pos)):
                        continue  # cut by the block boundary, perhaps: decode it again, whole
                    if cut_short:
                        raise self.ended(inside) from None
                raise error from None
            except RecursionError:
                raise DataError(f"{self.where(self.pos)}: JSON nested too deeply (refusing to parse)") from None
            except ValueError as e:  # int digit limit, out-of-range float, NaN literal
                reason = "an integer with too many digits" if "digits" in str(e) else first_line(e)[:120]
                raise DataError(f"{self.where(self.pos)}: invalid JSON: {reason}") from None
            if end == len(self.buf) and self.fill():  # a number may go on in the next block
                continue
            self.pos = end
            return value

    def expect(self, char: str, message: str, inside: str) -> None:
        if self.peek(inside) != char:
            raise DataError(f"{self.where(self.pos)}: invalid JSON: {message}")
        self.pos += 1


def _cut_short(text: str, e: json.JSONDecodeError) -> bool:
    """Whether a decode error of the whole rest of a file is its end coming too early (not a syntax error)."""
    return e.msg.startswith("Unterminated string") or bool(_UNFINISHED.fullmatch(text, e.pos))


def iter_object(path: str | os.PathLike, what: str = "a JSON object", expected: str = "JSON file"
                ) -> Iterator[tuple[str, Any]]:
    """(key, value) for each member of the JSON object that file `path` holds, in
    file order (a key given twice is yielded twice; a dict of them keeps the last, as json.load does). Lone
    surrogates are not refused here (a caller checking item by item lets --skip-bad skip the one item holding
    one). A file that is not one JSON object raises DataError ("expected `what`, got list")."""
    path = Path(path)
    with open_input(path, expected) as fh:
        before = os.fstat(fh.fileno())
        reader = _Reader(path, fh)
        reader.fill()
        inside = f"{what}, before its first member"
        while True:
            reader.pos = _SPACE.match(reader.buf, reader.pos).end()
            if reader.pos < len(reader.buf) or not reader.fill():
                break
        if reader.pos == len(reader.buf):
            raise DataError(f"{reader.where(reader.pos)}: invalid JSON: Expecting value (an empty file)")
        if reader.buf[reader.pos] != "{":  # an error either way: decoded whole, to say which (as json.load would)
            other = reader.value(what)
            raise DataError(f"{path}: expected {what}, got {type(other).__name__}")
        reader.pos += 1
        count = 0
        if reader.peek(inside) == "}":
            reader.pos += 1
        else:
            while True:
                if reader.peek(inside) != '"':
                    raise DataError(f"{reader.where(reader.pos)}: invalid JSON: Expecting property name enclosed "
                                    f"in double quotes")
                key = reader.value(inside)
                reader.expect(":", "Expecting ':' delimiter", inside)
                reader.peek(inside)
                yield key, reader.value(inside)
                count += 1
                inside = f"{what}, after {count} member{'s' if count > 1 else ''} (the last {key[:40]!r})"
                separator = reader.peek(inside)
                reader.pos += 1
                if separator == "}":
                    break
                if separator != ",":
                    raise DataError(f"{reader.where(reader.pos - 1)}: invalid JSON: Expecting ',' delimiter")
        while True:  # nothing but white space may follow
            reader.pos = _SPACE.match(reader.buf, reader.pos).end()
            if reader.pos < len(reader.buf):
                raise DataError(f"{reader.where(reader.pos)}: invalid JSON: Extra data")
            if not reader.fill():
                break
        after = os.fstat(fh.fileno())
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise DataError(f"{path}: changed while it was read ({before.st_size} → {after.st_size} bytes): "
                            f"truncated or rewritten meanwhile (run again once it is whole)")
