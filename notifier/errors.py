"""One exception family; each carries the HTTP status and title of its problem+json."""

from __future__ import annotations

from typing import Any


class NotifierError(Exception):
    """Something went wrong in the notification service."""

    status = 500
    title = "Internal error"
    type_slug = "internal"

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail or (self.__doc__ or self.title).strip())
        self.detail = detail or (self.__doc__ or self.title).strip()
        self.errors = errors


class BadRequest(NotifierError):
    """The request could not be read."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"


class MalformedUpload(BadRequest):
    """The uploaded file is not a readable recipient file; nothing was imported."""

    title = "Malformed upload"
    type_slug = "malformed-upload"


class Unauthorized(NotifierError):
    """A valid API key is required."""

    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class Forbidden(NotifierError):
    """The API key lacks the scope this call needs."""

    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(NotifierError):
    """No such resource."""

    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(NotifierError):
    """The resource is not in a state that allows this."""

    status = 409
    title = "Conflict"
    type_slug = "conflict"


class RequestTimeout(NotifierError):
    """The client stopped sending the request body."""

    status = 408
    title = "Request timeout"
    type_slug = "request-timeout"


class PayloadTooLarge(NotifierError):
    """The request body is larger than this endpoint accepts."""

    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class UnsupportedMediaType(NotifierError):
    """The request body's content type is not one this endpoint reads."""

    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class TooManyRequests(NotifierError):
    """Too many requests from this client; try again after the time in Retry-After."""

    status = 429
    title = "Too many requests"
    type_slug = "too-many-requests"

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ValidationFailed(NotifierError):
    """The request body is well-formed but its values are invalid."""

    status = 422
    title = "Validation failed"
    type_slug = "validation-failed"
