"""Bytes to lines: the BOM, whole lines across chunks, over-long lines, UTF-8."""

from __future__ import annotations

import codecs
from abc import ABC, abstractmethod
from typing import Any, AnyStr

from notifier.errors import MalformedUpload
from notifier.imports.rows import Row, RowChecker

MAX_HEADER_BYTES = 64 * 1024
MAX_RECORD_BYTES = 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class LineStream(ABC):
    """An upload's bytes handed to a reader as whole lines, each line at most a record's
    size; a reader (CSV, NDJSON) subclasses it and parses the lines."""

    def __init__(self, checker: RowChecker) -> None:
        self._checker = checker
        # Bound once: the readers call these for every record.
        self._accept = checker.accept
        self._reject = checker.reject
        self._variables = checker.variables
        # The unfinished last line, and the number of the next line.
        self._carry = bytearray()
        self._line = 1
        self._started = False
        self._skipping = False
        self._seen_record = False

    def feed(self, chunk: bytes, *, final: bool) -> list[Row]:
        """The rows of the lines this chunk completes (all that is left, when final)."""
        if not self._started:
            self._carry += chunk
            if len(self._carry) < len(_BOM) and not final:
                return []
            self._started = True
            if self._carry.startswith(_UTF16_BOMS):
                raise MalformedUpload("the file is UTF-16 text; upload it as UTF-8")
            chunk = bytes(self._carry).removeprefix(_BOM)
            self._carry = bytearray()
        if self._skipping:
            cut = chunk.find(b"\n")
            if cut < 0:
                return self._finish() if final else []
            chunk = chunk[cut + 1 :]
            self._skipping = False
        # The unfinished line grows in place, and is copied once when its end arrives, so
        # a long line trickling in through small chunks costs linear time.
        cut = len(chunk) if final else chunk.rfind(b"\n") + 1
        if not cut and not final:
            self._carry += chunk
            return self._drop_long_line() if len(self._carry) > self._line_limit() else []
        out = []
        if self._carry and len(self._carry) + chunk.find(b"\n") + 1 > self._line_limit():
            end = chunk.find(b"\n") + 1
            out = self._drop_long_line()
            self._skipping = False
            chunk, cut = chunk[end:], cut - end
        body = bytes(self._carry) + chunk[:cut] if self._carry else chunk[:cut]
        self._carry = bytearray(chunk[cut:])
        if body or (final and self._holding()):
            out += self._parse(body, final)
        if final:
            out += self._finish()
        elif len(self._carry) > self._line_limit():
            out += self._drop_long_line()
        return out

    # What a reader provides.

    @abstractmethod
    def _parse(self, body: bytes, final: bool) -> list[Row]:
        """The rows of whole lines (and of the last, unterminated one when final)."""

    def _in_header(self) -> bool:
        """Whether the next line is a header, which has a limit of its own."""
        return False

    def _holding(self) -> bool:
        """Whether the reader holds lines back (a record still open)."""
        return False

    def _release(self, limit: int) -> list[Row]:
        """The rows of lines held back, now that the line after them is over the limit;
        raises when they still form an open record."""
        return []

    # Lines over the limit.

    def _line_limit(self) -> int:
        return MAX_HEADER_BYTES if self._in_header() else MAX_RECORD_BYTES

    def _drop_long_line(self) -> list[Row]:
        """Refuse the unfinished line, now over the limit, and skip to its end; raise when
        the file cannot go on. Returns the rows of lines held back until now."""
        limit = self._line_limit()
        if not self._seen_record or self._in_header():
            text, _ = codecs.utf_8_decode(self._carry, "replace", False)
            if "\ufffd" in text:
                raise MalformedUpload("the file is not UTF-8 text")
            raise MalformedUpload(
                f"line {self._line} is longer than {limit // 1024} KB; "
                "the first line must be a short header or record"
            )
        out = self._release(limit)
        self._reject(self._line, f"longer than {limit // 1024} KB")
        self._line += 1
        self._carry = bytearray()
        self._skipping = True
        return out

    def _finish(self) -> list[Row]:
        if not self._seen_record:
            raise MalformedUpload("the upload is empty")
        return []


def decode_lines(body: bytes, first: int, nul_seen: bool) -> tuple[list[str], list[int], bool]:
    """Physical lines, each with its line break; the numbers of those not UTF-8 (counted
    from `first`); and whether a NUL has been seen, in this body or before."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        lines, bad = [], []
        for i, raw in enumerate(split_keepends(body)):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(raw.decode("utf-8", "replace"))
                bad.append(first + i)
        return lines, bad, nul_seen or b"\x00" in body
    nul_seen = nul_seen or "\x00" in text
    lines = text.splitlines(keepends=True)
    # splitlines() also breaks at \r, \v, \x1c… inside values; only \n ends a line.
    if len(lines) != text.count("\n") + (not text.endswith("\n")):
        lines = split_keepends(text)
    return lines, [], nul_seen


def split_keepends(text: AnyStr) -> list[AnyStr]:
    """Lines split at \\n only, each keeping its \\n; the last one may lack it."""
    newline: Any = "\n" if isinstance(text, str) else b"\n"
    parts = text.split(newline)
    last = parts.pop()
    lines = [part + newline for part in parts]
    if last:
        lines.append(last)
    return lines
