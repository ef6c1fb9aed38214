"""Recipient uploads: CSV or NDJSON streamed in, checked row by row, valid rows out for COPY.

Memory stays bounded by one chunk plus one record (at most MAX_RECORD_BYTES), whatever the
upload's size: nothing is kept per row but the first MAX_ERRORS error reports. Every value,
in every column, is limited to MAX_VALUE_CHARS characters.
"""

from __future__ import annotations

import codecs
import csv
import operator
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, AnyStr

import orjson
from email_validator import EmailNotValidError

from notifier.contacts import PhoneNormalizer, normalize_email
from notifier.errors import MalformedUpload
from notifier.templates import resolve_locale

Row = tuple[int, str, str | None, str | None, str, str]
"""(line, external_id, email, phone in E.164, locale key, template variables as JSON)."""

MAX_VALUE_CHARS = 1000
MAX_EXTERNAL_ID_CHARS = 255
MAX_COLUMNS = 200
MAX_HEADER_BYTES = 64 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_ERRORS = 1000

# The csv module's own limit is process-wide; raise it (never lower it) above the record
# bound, so an oversized value is this module's rejection and never a csv.Error.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES + 1))

_STANDARD_COLUMNS = ("external_id", "email", "phone", "locale")
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Fed to the csv reader after each batch of lines: parsed as a record of its own when the
# batch ended between records, swallowed into the last record when a quoted value is open.
_SENTINEL = "\x00"
_LOCALE_CACHE_SIZE = 256


class UploadFormat(StrEnum):
    """The body formats a recipient upload may use."""

    CSV = "csv"
    NDJSON = "ndjson"


# The media types an upload may be sent as, and the format each one is read as.
MEDIA_TYPES: Mapping[str, UploadFormat] = MappingProxyType(
    {
        "text/csv": UploadFormat.CSV,
        "application/x-ndjson": UploadFormat.NDJSON,
        "application/ndjson": UploadFormat.NDJSON,
        "application/jsonl": UploadFormat.NDJSON,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientRules:
    """What a campaign accepts: its channels, the locales with a template on every channel,
    the default locale and phone region, and the extra columns its templates use."""

    channels: frozenset[str]
    locales: frozenset[str]
    default_locale: str
    default_region: str | None = None
    variables: frozenset[str] = frozenset()


class RecipientImport:
    """One upload being read: iterate ``rows()``, then read the counts and errors."""

    def __init__(
        self, chunks: AsyncIterable[bytes], upload_format: str, rules: RecipientRules
    ) -> None:
        self.accepted_candidates = 0
        self.rejected = 0
        self.errors: list[dict[str, Any]] = []
        self._chunks = chunks
        self._format = UploadFormat(upload_format)
        self._rules = rules
        self._phones = PhoneNormalizer(rules.default_region)
        self._want_email = "email" in rules.channels
        self._want_phone = "sms" in rules.channels
        self._variables = tuple(sorted(rules.variables))
        self._locales: dict[str, str | None] = {}
        # The byte stream: the unfinished last line, and the number of the next line.
        self._carry = bytearray()
        self._line = 1
        self._started = False
        self._skipping = False
        self._seen_record = False
        self._nul_seen = False
        # CSV only: the header, and the lines of a record whose quoted value is still open.
        self._columns: tuple[str, ...] | None = None
        self._standard = operator.itemgetter(0, 0, 0, 0)
        self._var_index: tuple[tuple[str, int], ...] = ()
        self._pad = False
        self._pending: list[str] = []
        self._pending_bad: list[int] = []
        self._pending_line = 0
        self._pending_size = 0
        self._parsed_size = 0

    async def rows(self) -> AsyncIterator[Row]:
        """Valid rows in file order. Raises MalformedUpload when the file as a whole cannot
        be read, before any row when the problem is in its first lines."""
        async for chunk in self._chunks:
            if chunk:
                for row in self._feed(bytes(chunk), final=False):
                    self.accepted_candidates += 1
                    yield row
        for row in self._feed(b"", final=True):
            self.accepted_candidates += 1
            yield row

    def _reject(self, line: int, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "message": message})

    # The byte stream: BOM, whole lines, over-long lines.

    def _feed(self, chunk: bytes, *, final: bool) -> list[Row]:
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
        if body or (final and self._pending):
            out += self._parse(body, final)
        if final:
            out += self._finish()
        elif len(self._carry) > self._line_limit():
            out += self._drop_long_line()
        return out

    def _parse(self, body: bytes, final: bool) -> list[Row]:
        if self._format is UploadFormat.CSV:
            return self._parse_csv(body, final)
        return self._parse_ndjson(body)

    def _line_limit(self) -> int:
        header = self._format is UploadFormat.CSV and self._columns is None
        return MAX_HEADER_BYTES if header else MAX_RECORD_BYTES

    def _drop_long_line(self) -> list[Row]:
        """Refuse the unfinished line, now over the limit, and skip to its end; raise when
        the file cannot go on. Returns the rows of lines held back until now."""
        limit = self._line_limit()
        if not self._seen_record or (self._columns is None and self._format is UploadFormat.CSV):
            text, _ = codecs.utf_8_decode(self._carry, "replace", False)
            if "\ufffd" in text:
                raise MalformedUpload("the file is not UTF-8 text")
            raise MalformedUpload(
                f"line {self._line} is longer than {limit // 1024} KB; "
                "the first line must be a short header or record"
            )
        out = []
        if self._pending:
            # Lines held back may close their record; if it is still open, this line is
            # part of it and the record is too long.
            lines, bad, first = self._pending, self._pending_bad, self._pending_line
            self._pending, self._pending_bad = [], []
            out = self._records(lines, bad, first, final=False)
            if self._pending:
                raise MalformedUpload(
                    f"line {self._pending_line}: a record runs past "
                    f"{limit // 1024} KB; is a closing quote missing?"
                )
        self._reject(self._line, f"longer than {limit // 1024} KB")
        self._line += 1
        self._carry = bytearray()
        self._skipping = True
        return out

    def _finish(self) -> list[Row]:
        if not self._seen_record:
            raise MalformedUpload("the upload is empty")
        return []

    # CSV.

    def _parse_csv(self, body: bytes, final: bool) -> list[Row]:
        lines, bad = self._decode(body)
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

    def _decode(self, body: bytes) -> tuple[list[str], list[int]]:
        """Physical lines, each with its line break, and the numbers of those not UTF-8."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            lines, bad = [], []
            for i, raw in enumerate(_split_keepends(body)):
                try:
                    lines.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    lines.append(raw.decode("utf-8", "replace"))
                    bad.append(self._line + i)
            self._nul_seen = self._nul_seen or b"\x00" in body
            return lines, bad
        self._nul_seen = self._nul_seen or "\x00" in text
        lines = text.splitlines(keepends=True)
        # splitlines() also breaks at \r, \v, \x1c… inside values; only \n ends a line.
        if len(lines) != text.count("\n") + (not text.endswith("\n")):
            lines = _split_keepends(text)
        return lines, []

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
                        self._bad_record(line, "not valid UTF-8")
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
                if bad and any(first + start <= b < first + end for b in bad):
                    message = "not valid UTF-8"  # the cause, rather than its symptom
                if sum(map(len, lines[start:end])) > MAX_RECORD_BYTES:
                    if end - start > 1:
                        raise MalformedUpload(
                            f"line {first + start}: a record runs past "
                            f"{MAX_RECORD_BYTES // 1024} KB; is a closing "
                            "quote missing?"
                        ) from None
                    message = f"longer than {MAX_RECORD_BYTES // 1024} KB"
                self._bad_record(first + start, message)
                start = end

    def _bad_record(self, line: int, message: str) -> None:
        self._seen_record = True
        if self._columns is None:
            reason = "the file is not UTF-8 text" if "UTF-8" in message else message
            raise MalformedUpload(f"line {line}: {reason}")
        self._reject(line, message)

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
                    line, f"{len(fields)} values but the header has {len(columns)} columns"
                )
                return
            fields.extend([""] * (len(columns) - len(fields)))
        if max(map(len, fields)) > MAX_VALUE_CHARS:
            name = next(c for c, v in zip(columns, fields, strict=True) if len(v) > MAX_VALUE_CHARS)
            self._reject(line, f"{name}: value longer than {MAX_VALUE_CHARS} characters")
            return
        if self._nul_seen:
            for name, value in zip(columns, fields, strict=True):
                if "\x00" in value:
                    self._reject(line, f"{name}: contains a NUL character")
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
        if isinstance(row, str):
            self._reject(line, row)
        else:
            out.append(row)

    def _read_header(self, fields: list[str]) -> None:
        if sum(map(len, fields)) > MAX_HEADER_BYTES:
            raise MalformedUpload(f"the header is longer than {MAX_HEADER_BYTES // 1024} KB")
        if len(fields) > MAX_COLUMNS:
            raise MalformedUpload(
                f"the header has {len(fields)} columns; at most {MAX_COLUMNS} are allowed"
            )
        names = []
        for number, raw in enumerate(fields, 1):
            name = raw.strip()
            if name.lower() in _STANDARD_COLUMNS:
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
        missing = sorted(self._rules.variables - set(names))
        if missing:
            raise MalformedUpload(
                "the header lacks columns the templates use: " + ", ".join(missing)
            )
        contacts = [
            c for c, wanted in (("email", self._want_email), ("phone", self._want_phone)) if wanted
        ]
        if not any(c in names for c in contacts):
            raise MalformedUpload(
                f"the header has no {' or '.join(map(repr, contacts))} "
                "column, which this campaign's channels need"
            )
        self._columns = tuple(names)
        # A missing standard column reads as an empty value padded onto the end of each row.
        self._standard = operator.itemgetter(
            *(names.index(c) if c in names else len(names) for c in _STANDARD_COLUMNS)
        )
        self._pad = any(c not in names for c in _STANDARD_COLUMNS)
        self._var_index = tuple((name, names.index(name)) for name in self._variables)

    # NDJSON.

    def _parse_ndjson(self, body: bytes) -> list[Row]:
        out: list[Row] = []
        parts = body.split(b"\n")
        if not parts[-1]:
            parts.pop()
        line = self._line
        self._line += len(parts)
        for raw in parts:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                if raw.strip():
                    self._bad_json(raw, line)
                line += 1
                continue
            if type(record) is dict:
                self._seen_record = True
                self._json_record(record, line, b"\\u0000" in raw, out)
            else:
                self._bad_json(raw, line)
            line += 1
        return out

    def _bad_json(self, raw: bytes, line: int) -> None:
        try:
            raw.decode("utf-8")
            reason = "not a JSON object"
        except UnicodeDecodeError:
            reason = "not valid UTF-8"
        if not self._seen_record:
            raise MalformedUpload(
                f"line {line} is {reason}; the body must be NDJSON, one JSON object per line"
            )
        self._reject(line, reason)

    def _json_record(self, record: dict[str, Any], line: int, nul: bool, out: list[Row]) -> None:
        if len(record) > MAX_COLUMNS:
            self._reject(line, f"more than {MAX_COLUMNS} fields")
            return
        values: dict[str, str] = {}
        for key, value in record.items():
            kind = type(value)
            if kind is str:
                text = value
            elif kind is int or kind is float:
                text = str(value)
            elif value is None:
                text = ""
            else:
                self._reject(line, f"{key[:40]}: must be a string or a number")
                return
            if len(text) > MAX_VALUE_CHARS:
                self._reject(line, f"{key[:40]}: value longer than {MAX_VALUE_CHARS} characters")
                return
            if nul and "\x00" in text:
                self._reject(line, f"{key[:40]}: contains a NUL character")
                return
            values[key] = text
        row = self._accept(
            line,
            values.get("external_id", ""),
            values.get("email", ""),
            values.get("phone", ""),
            values.get("locale", ""),
            {name: values.get(name, "") for name in self._variables},
        )
        if isinstance(row, str):
            self._reject(line, row)
        else:
            out.append(row)

    # One record's values.

    def _accept(
        self,
        line: int,
        external_id: str,
        email: str,
        phone: str,
        locale: str,
        variables: dict[str, str],
    ) -> Row | str:
        """The row to store, or why it is rejected."""
        external_id = external_id.strip()
        if not external_id:
            return "external_id: missing"
        if len(external_id) > MAX_EXTERNAL_ID_CHARS:
            return f"external_id: longer than {MAX_EXTERNAL_ID_CHARS} characters"
        address = number = None
        email = email.strip(" ")
        if email and self._want_email:
            try:
                address = normalize_email(email)
            except EmailNotValidError as exc:
                return f"email: {exc}"
        phone = phone.strip(" ")
        if phone and self._want_phone:
            number = self._phones.e164(phone)
            if number is None:
                return "phone: not a valid number"
        if address is None and number is None:
            return "no email or phone for this campaign's channels"
        key = self._locale(locale)
        if key is None:
            shown = locale.strip() or self._rules.default_locale
            return f"locale: no template for {shown[:40]!r}"
        return (
            line,
            external_id,
            address,
            number,
            key,
            orjson.dumps(variables).decode() if variables else "{}",
        )

    def _locale(self, requested: str) -> str | None:
        try:
            return self._locales[requested]
        except KeyError:
            found = resolve_locale(requested, self._rules.locales, self._rules.default_locale)
            if len(self._locales) < _LOCALE_CACHE_SIZE:
                self._locales[requested] = found
            return found


def _split_keepends(text: AnyStr) -> list[AnyStr]:
    """Lines split at \\n only, each keeping its \\n; the last one may lack it."""
    newline: Any = "\n" if isinstance(text, str) else b"\n"
    parts = text.split(newline)
    last = parts.pop()
    lines = [part + newline for part in parts]
    if last:
        lines.append(last)
    return lines
