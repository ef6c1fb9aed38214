"""API key bodies: what creation accepts, the new key with its secret, the key list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from notifier.models import SCOPES, Scope
from notifier.schemas.common import Body, Hint, Page, View

MAX_LIFETIME_DAYS = 90


class KeyCreate(Body):
    """A request for a new API key."""

    invalid: ClassVar[str] = "the key is not valid"

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        Hint("1 to 200 characters"),
    ]
    scopes: Annotated[
        list[Scope],
        Field(min_length=1, json_schema_extra={"uniqueItems": True}),
        Hint(f"a non-empty subset of {sorted(SCOPES)}"),
    ]
    expires_in_days: Annotated[
        int,
        Field(ge=1, le=MAX_LIFETIME_DAYS, strict=True),
        Hint(f"between 1 and {MAX_LIFETIME_DAYS}"),
    ]


class NewKey(View):
    """A key just created: its secret is in this answer only."""

    id: uuid.UUID
    name: str
    scopes: list[Scope]
    expires_at: datetime
    secret: str = Field(description="shown once; store it now")


class Key(View):
    """A key as listed: never its secret."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyList(Page[Key]):
    """A page of keys, newest first."""
