"""CSV uploads: a header naming the columns, then one record per row, quoted values allowed
to span lines."""

from __future__ import annotations

import csv
import operator
from collections import Counter
from collections.abc import Sequence

from notifier.errors import MalformedUpload
from notifier.imports.framing import (
    MAX_HEADER_BYTES,
    MAX_RECORD_BYTES,
    LineStream,
    decode_lines,
)
from notifier.imports.rows import (
    MAX_COLUMNS,
    MAX_VALUE_CHARS,
    STANDARD_COLUMNS,
    Row,
    RowChecker,
    usable_id,
)

# The csv module's own limit is process-wide; raise it (never lower it) above the record
# bound, so an oversized value is this module's rejection and never a csv.Error.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES + 1))

# Fed to the csv reader after each batch of lines: parsed as a record of its own when the
# batch ended between records, swallowed into the last record when a quoted value is open.
_SENTINEL = "\x00"


class CsvStream(LineStream):
    """Reads a CSV upload: its header first, then its records."""

    def __init__(self, checker: RowChecker) -> None:
        super().__init__(checker)
        self._nul_seen = False
        # The header, and the lines of a record whose quoted value is still open.
        self._columns: tuple[str, ...] | None = None
        self._standard = operator.itemgetter(0, 0, 0, 0)
        self._id_index = 0
        self._var_index: tuple[tuple[str, int], ...] = ()
        self._pad = False
        self._pending: list[str] = []
        self._pending_bad: list[int] = []
        self._pending_line = 0
        self._pending_size = 0
        self._parsed_size = 0

    def _in_header(self) -> bool:
        return self._columns is None

    def _holding(self) -> bool:
        return bool(self._pending)

    def _release(self, limit: int) -> list[Row]:
        if not self._pending:
            return []
        # Lines held back may close their record; if it is still open, the line after them
        # is part of it and the record is too long.
        lines, bad, first = self._pending, self._pending_bad, self._pending_line
        self._pending, self._pending_bad = [], []
        out = self._records(lines, bad, first, final=False)
        if self._pending:
            raise MalformedUpload(
                f"line {self._pending_line}: a record runs past "
                f"{limit // 1024} KB; is a closing quote missing?"
            )
        return out

    def _parse(self, body: bytes, final: bool) -> list[Row]:
        lines, bad, self._nul_seen = decode_lines(body, self._line, self._nul_seen)
        first = self._line
        self._line += len(lines)
        if self._pending:
            # Re-read an open record only once its size has doubled: a record split over
            # many chunks costs linear time, not quadratic.
            self._pending.extend(lines)
            self._pending_bad.extend(bad)
            self._pending_size += len(body)
            if (
                not final
                and self._pending_size < 2 * self._parsed_size
                and self._pending_size <= MAX_RECORD_BYTES
            ):
                return []
            lines, bad, first = self._pending, self._pending_bad, self._pending_line
            self._pending, self._pending_bad = [], []
        return self._records(lines, bad, first, final)

    def _records(self, lines: list[str], bad: list[int], first: int, final: bool) -> list[Row]:
        count = len(lines)
        lines.append(_SENTINEL)
        reader = csv.reader(lines)
        record = self._csv_record if self._columns is not None else self._first_record
        out: list[Row] = []
        start = 0
        while True:
            try:
                for fields in reader:
                    end = reader.line_num
                    if end > count:
                        if start < count:
                            self._unfinished(lines, bad, first + start, start, count, final)
                        return out
                    line = first + start
                    if bad and any(line <= b < first + end for b in bad):
                        self._bad_record(line, "not valid UTF-8", fields=fields)
                    elif fields:
                        record(fields, line, out)
                    start = end
                return out
            except csv.Error as exc:
                end = reader.line_num
                if end > count:
                    self._unfinished(lines, bad, first + start, start, count, final)
                    return out
                message = f"not valid CSV ({exc})"
                reason = "not valid CSV"  # the parser's words may quote a character
                if bad and any(first + start <= b < first + end for b in bad):
                    message = reason = "not valid UTF-8"  # the cause, rather than its symptom
                if sum(map(len, lines[start:end])) > MAX_RECORD_BYTES:
                    if end - start > 1:
                        raise MalformedUpload(
                            f"line {first + start}: a record runs past "
                            f"{MAX_RECORD_BYTES // 1024} KB; is a closing "
                            "quote missing?"
                        ) from None
                    message = reason = f"longer than {MAX_RECORD_BYTES // 1024} KB"
                self._bad_record(first + start, message, reason)
                start = end

    def _bad_record(
        self, line: int, message: str, reason: str | None = None, fields: Sequence[str] = ()
    ) -> None:
        self._seen_record = True
        if self._columns is None:
            cause = "the file is not UTF-8 text" if "UTF-8" in message else message
            raise MalformedUpload(f"line {line}: {cause}")
        # Undecodable bytes became U+FFFD: an id holding one is not the account's id.
        raw = fields[self._id_index] if len(fields) > self._id_index else ""
        external_id = None if "\ufffd" in raw else usable_id(raw)
        self._reject(line, message, external_id=external_id, reason=reason)

    def _unfinished(
        self, lines: list[str], bad: list[int], line: int, start: int, count: int, final: bool
    ) -> None:
        """A record whose quoted value is still open when the lines read so far run out."""
        limit = MAX_HEADER_BYTES if self._columns is None else MAX_RECORD_BYTES
        if final:
            self._bad_record(line, "a quoted value is not closed before the end of the file")
            return
        self._pending = lines[start:count]
        self._pending_bad = [b for b in bad if b >= line]
        self._pending_line = line
        self._pending_size = self._parsed_size = sum(map(len, self._pending))
        if self._pending_size > limit:
            raise MalformedUpload(
                f"line {line}: a record runs past {limit // 1024} KB; is a closing quote missing?"
            )

    def _first_record(self, fields: list[str], line: int, out: list[Row]) -> None:
        if self._columns is None:
            self._seen_record = True
            self._read_header(fields)
        else:
            self._csv_record(fields, line, out)

    def _csv_record(self, fields: list[str], line: int, out: list[Row]) -> None:
        columns = self._columns
        assert columns is not None
        if len(fields) != len(columns):
            if len(fields) > len(columns):
                self._reject(
                    line,
                    f"{len(fields)} values but the header has {len(columns)} columns",
                    external_id=usable_id(fields[self._id_index]),
                )
                return
            fields.extend([""] * (len(columns) - len(fields)))
        if max(map(len, fields)) > MAX_VALUE_CHARS:
            name = next(c for c, v in zip(columns, fields, strict=True) if len(v) > MAX_VALUE_CHARS)
            self._reject(
                line,
                f"{name}: value longer than {MAX_VALUE_CHARS} characters",
                external_id=usable_id(fields[self._id_index]),
            )
            return
        if self._nul_seen:
            for name, value in zip(columns, fields, strict=True):
                if "\x00" in value:
                    self._reject(
                        line,
                        f"{name}: contains a NUL character",
                        external_id=usable_id(fields[self._id_index]),
                    )
                    return
        if self._pad:
            fields.append("")
        external_id, email, phone, locale = self._standard(fields)
        row = self._accept(
            line,
            external_id,
            email,
            phone,
            locale,
            {name: fields[i] for name, i in self._var_index},
        )
        if row is not None:
            out.append(row)

    def _read_header(self, fields: list[str]) -> None:
        names = _column_names(fields)
        rules = self._checker.rules
        missing = sorted(rules.variables - set(names))
        if missing:
            raise MalformedUpload(
                "the header lacks columns the templates use: " + ", ".join(missing)
            )
        wanted = (("email", self._checker.want_email), ("phone", self._checker.want_phone))
        contacts = [c for c, want in wanted if want]
        if not any(c in names for c in contacts):
            raise MalformedUpload(
                f"the header has no {' or '.join(map(repr, contacts))} "
                "column, which this campaign's channels need"
            )
        self._columns = tuple(names)
        # A missing standard column reads as an empty value padded onto the end of each row.
        self._standard = operator.itemgetter(
            *(names.index(c) if c in names else len(names) for c in STANDARD_COLUMNS)
        )
        self._pad = any(c not in names for c in STANDARD_COLUMNS)
        self._id_index = names.index("external_id")
        self._var_index = tuple((name, names.index(name)) for name in self._variables)


def _column_names(fields: list[str]) -> list[str]:
    """A header's column names: bounded, named, none repeated, with an external_id."""
    if sum(map(len, fields)) > MAX_HEADER_BYTES:
        raise MalformedUpload(f"the header is longer than {MAX_HEADER_BYTES // 1024} KB")
    if len(fields) > MAX_COLUMNS:
        raise MalformedUpload(
            f"the header has {len(fields)} columns; at most {MAX_COLUMNS} are allowed"
        )
    names = []
    for number, raw in enumerate(fields, 1):
        name = raw.strip()
        if name.lower() in STANDARD_COLUMNS:
            name = name.lower()
        if not name or "\x00" in name:
            raise MalformedUpload(f"header column {number} has no name")
        names.append(name)
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise MalformedUpload("the header repeats column " + ", ".join(map(repr, repeated)))
    if "external_id" not in names:
        raise MalformedUpload(
            "the first line must be a header naming the columns, with an 'external_id' column"
        )
    return names
