"""One recipient upload being read, and the formats an upload may come in."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from notifier.imports.csv import CsvStream
from notifier.imports.ndjson import NdjsonStream
from notifier.imports.rows import RecipientRules, Refused, Row, RowChecker


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


class RecipientImport:
    """One upload being read: iterate ``rows()``, then read the counts and errors."""

    def __init__(
        self, chunks: AsyncIterable[bytes], upload_format: str, rules: RecipientRules
    ) -> None:
        self.accepted_candidates = 0
        self._chunks = chunks
        self._checker = RowChecker(rules)
        is_csv = UploadFormat(upload_format) is UploadFormat.CSV
        self._stream = (CsvStream if is_csv else NdjsonStream)(self._checker)

    @property
    def rejected(self) -> int:
        """Records refused so far."""
        return self._checker.rejected

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Why, by line, for the first MAX_ERRORS refused records."""
        return self._checker.errors

    async def batches(self) -> AsyncIterator[tuple[list[Row], list[Refused]]]:
        """Per chunk of the body, its valid rows and its refused records, in file order; a
        chunk's share of either is bounded by its size, so nothing piles up. Raises
        MalformedUpload when the file as a whole cannot be read, before any row when the
        problem is in its first lines."""
        feed, refused = self._stream.feed, self._checker.take_refused
        async for chunk in self._chunks:
            if chunk:
                rows = feed(bytes(chunk), final=False)
                self.accepted_candidates += len(rows)
                yield rows, refused()
        rows = feed(b"", final=True)
        self.accepted_candidates += len(rows)
        yield rows, refused()

    async def rows(self) -> AsyncIterator[Row]:
        """Valid rows in file order (refused ones are only counted and reported); raises as
        batches() does."""
        async for rows, _ in self.batches():
            for row in rows:
                yield row
