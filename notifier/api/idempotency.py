"""Idempotency-Key on POSTs: a retry with the same key gets the first response again.

The same key with a different request is 422; a retry while the first is still running is
409. Keys belong to the API key that used them and are kept for a day. For streamed uploads
the body is hashed as it streams, and a retry's body is read and hashed to compare.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from notifier.api.context import KEY, POOL, Handler
from notifier.api.responses import error_response
from notifier.db import queries
from notifier.errors import BadRequest, Conflict, NotifierError, ValidationFailed
from notifier.imports.upload import MEDIA_TYPES

HEADER = "Idempotency-Key"
STREAMED_TYPES = frozenset(MEDIA_TYPES)  # bodies hashed as they stream, not read first


class BodyDigest:
    """A running SHA-256 of a body that is read as a stream."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def digest(self) -> bytes:
        return self._hash.digest()


BODY_DIGEST = web.RequestKey("body_digest", BodyDigest)


def _check(value: str) -> str:
    if not 1 <= len(value) <= 255 or not value.isprintable() or not value.isascii():
        raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters")
    return value


async def _replay(request: web.Request, row: Any, request_hash: bytes | None) -> web.Response:
    if row["status"] is None:
        raise Conflict(f"a request with this {HEADER} is still running")
    if request_hash is None:  # a streamed body: read the retry's body to compare it
        digest = BodyDigest()
        async for chunk in request.content.iter_any():
            digest.update(chunk)
        request_hash = digest.digest()
    if (row["method"], row["path"], row["request_hash"]) != (
        request.method,
        request.path,
        request_hash,
    ):
        raise ValidationFailed(f"this {HEADER} was used for a different request")
    return web.Response(
        status=row["status"],
        body=row["response"],
        content_type=row["content_type"],
        headers={"Idempotent-Replayed": "true"},
    )


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replay, refuse, or run-and-remember a POST that carries an Idempotency-Key."""
    raw_key = request.headers.get(HEADER)
    if request.method != "POST" or raw_key is None or KEY not in request:
        return await handler(request)
    key = _check(raw_key)
    owner = request[KEY].id
    request_hash: bytes | None = None
    if request.content_type in STREAMED_TYPES:
        request[BODY_DIGEST] = BodyDigest()
    else:
        request_hash = hashlib.sha256(await request.read()).digest()
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        owned = await conn.fetchval(
            queries["claim_idempotency_key"], owner, key, request.method, request.path, request_hash
        )
        earlier = None if owned else await conn.fetchrow(queries["get_idempotency_key"], owner, key)
    if earlier is not None:
        return await _replay(request, earlier, request_hash)
    try:
        response = await handler(request)
    except NotifierError as exc:
        response = error_response(exc)
    except BaseException:
        async with pool.acquire() as conn:
            await conn.execute(queries["release_idempotency_key"], owner, key)
        raise
    if response.status >= 500 or not isinstance(response, web.Response):
        async with pool.acquire() as conn:
            await conn.execute(queries["release_idempotency_key"], owner, key)
        return response
    digest = request[BODY_DIGEST].digest() if BODY_DIGEST in request else None
    body = response.body if isinstance(response.body, bytes) else b""
    async with pool.acquire() as conn:
        await conn.execute(
            queries["finish_idempotency_key"],
            owner,
            key,
            response.status,
            response.content_type,
            body,
            digest,
        )
    return response
