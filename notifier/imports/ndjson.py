"""NDJSON uploads: one JSON object per line, its keys the columns."""

from __future__ import annotations

from typing import Any

import orjson

from notifier.errors import MalformedUpload
from notifier.imports.framing import LineStream
from notifier.imports.rows import (
    MAX_COLUMNS,
    MAX_VALUE_CHARS,
    STANDARD_COLUMNS,
    Row,
    RowChecker,
    usable_id,
)


class NdjsonStream(LineStream):
    """Reads an NDJSON upload, a record per line."""

    def __init__(self, checker: RowChecker) -> None:
        super().__init__(checker)
        # Keys a kept reason may name; any other key is a value of the record.
        self._known = frozenset((*STANDARD_COLUMNS, *checker.variables))

    def _parse(self, body: bytes, final: bool) -> list[Row]:
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
            self._refuse(record, line, f"more than {MAX_COLUMNS} fields")
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
                self._refuse(record, line, "must be a string or a number", key)
                return
            if len(text) > MAX_VALUE_CHARS:
                self._refuse(record, line, f"value longer than {MAX_VALUE_CHARS} characters", key)
                return
            if nul and "\x00" in text:
                self._refuse(record, line, "contains a NUL character", key)
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
        if row is not None:
            out.append(row)

    def _refuse(self, record: dict[str, Any], line: int, why: str, key: str | None = None) -> None:
        """Refuse a record before its values are checked; the kept reason names the key only
        when it is a column the campaign knows, since any other key is the record's own."""
        message = reason = why
        if key is not None:
            message = f"{key[:40]}: {why}"
            reason = message if key in self._known else f"a field: {why}"
        self._reject(line, message, external_id=usable_id(record.get("external_id")), reason=reason)
