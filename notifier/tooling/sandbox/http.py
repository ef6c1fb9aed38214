"""A small HTTP/1.1 client for the sandbox's status callbacks: form POSTs over kept-alive
connections, a fraction of a general client's cost per request (the sandbox must never be
what limits a benchmark of the service)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpError(Exception):
    """The peer answered with something that is not HTTP/1.1."""


class FormPoster:
    """POSTs form bodies to plain-HTTP URLs, reusing idle connections per host and port."""

    def __init__(self, *, timeout: float = 10.0, user_agent: str = "TwilioProxy/1.1") -> None:
        self._timeout = timeout
        self._user_agent = user_agent
        self._idle: dict[tuple[str, int], list[Stream]] = {}

    async def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> int:
        """Send one request; returns the response status. Raises OSError or HttpError."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise HttpError(f"only http URLs, not {parts.scheme!r}")
        origin = (parts.hostname, parts.port or 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        body = urlencode(params).encode()
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"User-Agent: {self._user_agent}\r\n"
            "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        ).encode()
        idle = self._idle.setdefault(origin, [])
        stream = idle.pop() if idle else None
        fresh = stream is None
        if stream is None:
            stream = await asyncio.wait_for(asyncio.open_connection(*origin), self._timeout)
        try:
            status, keep = await asyncio.wait_for(
                self._exchange(stream, head + body), self._timeout
            )
        except (OSError, HttpError, asyncio.IncompleteReadError, TimeoutError):
            _close(stream)
            if fresh:
                raise
            # An idle connection the server had closed: one retry on a new connection.
            stream = await asyncio.wait_for(asyncio.open_connection(*origin), self._timeout)
            try:
                status, keep = await asyncio.wait_for(
                    self._exchange(stream, head + body), self._timeout
                )
            except BaseException:
                _close(stream)
                raise
        if keep:
            idle.append(stream)
        else:
            _close(stream)
        return status

    async def _exchange(self, stream: Stream, request: bytes) -> tuple[int, bool]:
        reader, writer = stream
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            version, code, *_ = lines[0].split(" ", 2)
            status = int(code)
        except ValueError:
            raise HttpError("not an HTTP status line") from None
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif "content-length" in fields:
            await reader.readexactly(int(fields["content-length"]))
        keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        return status, keep

    async def close(self) -> None:
        """Close every idle connection."""
        for streams in self._idle.values():
            for stream in streams:
                _close(stream)
        self._idle.clear()


def _close(stream: Stream) -> None:
    with contextlib.suppress(Exception):
        stream[1].close()
