"""The audit log as the API lists it."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from notifier.schemas.common import Page, View


class AuditEntry(View):
    """One mutating call: when, with which key, what, on what, how it ended, from where."""

    id: int
    at: datetime
    api_key_id: uuid.UUID | None
    action: str = Field(examples=["POST /v1/campaigns/{id}/launch"])
    target: str | None
    status: int
    client: str | None
    detail: str | None = Field(
        default=None, description="what the call said of itself: a launch override's reason"
    )


class AuditList(Page[AuditEntry]):
    """A page of the audit log, newest first."""
