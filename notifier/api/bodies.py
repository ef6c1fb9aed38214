"""Request bodies read at the edge: JSON, checked by the model that describes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel

from notifier.errors import BadRequest, UnsupportedMediaType
from notifier.schemas.common import validated

ModelT = TypeVar("ModelT", bound=BaseModel)

# The most a JSON body may be; larger ones are a 413 before they are read.
JSON_BODY_LIMIT = 1024 * 1024


async def read_json(request: web.Request) -> Any:
    """The request's JSON body: 415 for another content type, 400 for text that is not JSON."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


async def read_model(
    request: web.Request, model: type[ModelT], *, context: Mapping[str, Any] | None = None
) -> ModelT:
    """The request's JSON body as `model`; JSON that is not an object, or not a valid one,
    is a 422 naming every problem by field."""
    return validated(model, await read_json(request), context=context)
