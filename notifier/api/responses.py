"""Every answer of the API leaves through here: bodies rendered by their models, and the one
builder of problem+json."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from notifier.errors import NotifierError, TooManyRequests
from notifier.schemas.common import Problem


def render(
    body: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response of a model: times in RFC 3339 UTC (Z), ids as strings."""
    return web.Response(
        body=body.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def stream_csv(
    request: web.Request, filename: str, chunks: AsyncIterator[bytes]
) -> web.StreamResponse:
    """A CSV download streamed as its chunks come, never held whole."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


def json_response(data: dict[str, Any], *, status: int = 200) -> web.Response:
    """A JSON response of plain data (operational answers that no integrator parses)."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An RFC 9457 problem document."""
    doc = Problem.model_validate(
        {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
        | ({"errors": errors} if errors else {})
    )
    return web.Response(
        body=doc.model_dump_json(exclude_none=True).encode(),
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


def error_response(exc: NotifierError) -> web.Response:
    """The problem document of one of the service's errors, with the headers it implies."""
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return problem(
        exc.status, exc.title, exc.detail, slug=exc.type_slug, errors=exc.errors, headers=headers
    )
