"""A campaign's templates compiled once, rendering one person's email or SMS."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from jinja2 import Template, nodes

from notifier import messageid
from notifier.templates.environment import HTML_ENV, TEXT_ENV, render
from notifier.templates.mime import body_part, from_header, one_line, subject_header
from notifier.templates.sms import SMS_CONTROLS

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True, kw_only=True)
class _EmailParts:
    subject: Template
    static_subject: bytes | None  # the encoded header, when the subject uses no variables
    text: Template
    html: Template | None


class CompiledCampaign:
    """One campaign's templates, compiled once; renders a person's email and SMS."""

    __slots__ = (
        "_alternative",
        "_close",
        "_date",
        "_date_at",
        "_email",
        "_from",
        "_message_id_tail",
        "_separator",
        "_sms",
    )

    def __init__(
        self,
        templates: Mapping[str, Any],
        *,
        email_from: str,
        from_name: str | None = None,
        message_id_domain: str,
    ) -> None:
        if not _HOSTNAME.fullmatch(message_id_domain):
            raise ValueError("message_id_domain must be a host name")
        self._email: dict[str, _EmailParts] = {}
        for locale, parts in templates.get("email", {}).items():
            subject = TEXT_ENV.from_string(parts["subject"])
            static = not any(TEXT_ENV.parse(parts["subject"]).find_all(nodes.Name))
            self._email[locale] = _EmailParts(
                subject=subject,
                static_subject=subject_header(render(subject, {})) if static else None,
                text=TEXT_ENV.from_string(parts["text"]),
                html=HTML_ENV.from_string(parts["html"]) if parts.get("html") else None,
            )
        self._sms = {
            locale: TEXT_ENV.from_string(parts["text"])
            for locale, parts in templates.get("sms", {}).items()
        }
        self._from = from_header(email_from, from_name)
        self._message_id_tail = f"@{message_id_domain}>\r\n".encode("ascii")
        # "=_" can never occur in base64 or quoted-printable text, so one boundary per
        # campaign is safe for every message.
        boundary = f"=_{uuid.uuid4().hex}".encode("ascii")
        self._alternative = (
            b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
            b' boundary="' + boundary + b'"\r\n\r\n'
        )
        self._separator = b"--" + boundary + b"\r\n"
        self._close = b"--" + boundary + b"--\r\n"
        self._date_at = -1
        self._date = b""

    def render_email(
        self, locale: str, to: str, context: Mapping[str, str], *, ref: str = ""
    ) -> bytes:
        """A complete RFC 5322 message for one person, ready for SMTP DATA. `ref` leads the
        Message-ID (the delivery it belongs to), so that the relay's events can name it."""
        parts = self._email[locale]
        subject = parts.static_subject or subject_header(render(parts.subject, context))
        text = body_part(render(parts.text, context), b"plain")
        now = int(time.time())
        if now != self._date_at:
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
            self._date_at = now
        head = [
            self._from,
            b"To: ",
            one_line(to).encode("utf-8"),
            b"\r\n",
            subject,
            self._date,
            b"Message-ID: <",
            messageid.local_part(ref),
            self._message_id_tail,
        ]
        if parts.html is None:
            return b"".join((*head, b"MIME-Version: 1.0\r\n", text))
        html = body_part(render(parts.html, context), b"html")
        return b"".join(
            (
                *head,
                self._alternative,
                self._separator,
                text,
                b"\r\n",
                self._separator,
                html,
                b"\r\n",
                self._close,
            )
        )

    def render_sms(self, locale: str, context: Mapping[str, str]) -> str:
        """The SMS text for one person: line feeds kept, other control characters dropped."""
        text = render(self._sms[locale], context)
        return SMS_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
