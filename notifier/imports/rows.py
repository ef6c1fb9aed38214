"""One record's values checked and normalized into the row that is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from email_validator import EmailNotValidError

from notifier.contacts import PhoneNormalizer, normalize_email
from notifier.templates.locales import resolve_locale

Row = tuple[int, str, str | None, str | None, str, str]
"""(line, external_id, email, phone in E.164, locale key, template variables as JSON)."""
Refused = tuple[int, str | None, str]
"""(line, external_id when the record had a usable one, reason): a refused record as it is
kept. The reason never holds a value of the record, so it can be kept and listed."""

STANDARD_COLUMNS = ("external_id", "email", "phone", "locale")

MAX_VALUE_CHARS = 1000
MAX_EXTERNAL_ID_CHARS = 255
MAX_COLUMNS = 200
MAX_ERRORS = 1000

_LOCALE_CACHE_SIZE = 256


def usable_id(value: object) -> str | None:
    """A refused record's external id, if it is one an accepted row could have had."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_EXTERNAL_ID_CHARS or "\x00" in text:
        return None
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientRules:
    """What a campaign accepts: its channels, the locales with a template on every channel,
    the default locale and phone region, and the extra columns its templates use."""

    channels: frozenset[str]
    locales: frozenset[str]
    default_locale: str
    default_region: str | None = None
    variables: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a record is refused: the message the uploader sees, the record's external id when
    it had a usable one, and the reason kept when the message shows one of its values."""

    message: str
    external_id: str | None = None
    reason: str | None = None


class RowChecker:
    """Checks records against a campaign's rules; counts and reports the rejected ones."""

    def __init__(self, rules: RecipientRules) -> None:
        self.rules = rules
        self.rejected = 0
        self.errors: list[dict[str, Any]] = []
        # Refused records not yet taken by the reader of the upload (see take_refused).
        self.refused: list[Refused] = []
        self.want_email = "email" in rules.channels
        self.want_phone = "sms" in rules.channels
        self.variables = tuple(sorted(rules.variables))
        self._phones = PhoneNormalizer(rules.default_region)
        self._locales: dict[str, str | None] = {}

    def reject(
        self, line: int, message: str, *, external_id: str | None = None, reason: str | None = None
    ) -> None:
        """Count a refused record; the first MAX_ERRORS are reported by line. Every one is
        also kept for take_refused(), with `reason` in place of the message when the message
        shows a value of the record (the uploader may see it; the record must not keep it)."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "message": message})
        self.refused.append((line, external_id, message if reason is None else reason))

    def take_refused(self) -> list[Refused]:
        """The records refused since the last call."""
        refused, self.refused = self.refused, []
        return refused

    def accept(
        self,
        line: int,
        external_id: str,
        email: str,
        phone: str,
        locale: str,
        variables: dict[str, str],
    ) -> Row | None:
        """The row to store, or None when it is rejected (and counted as such)."""
        checked = self._check(line, external_id, email, phone, locale, variables)
        if isinstance(checked, _Refusal):
            self.reject(
                line, checked.message, external_id=checked.external_id, reason=checked.reason
            )
            return None
        return checked

    def _check(
        self,
        line: int,
        external_id: str,
        email: str,
        phone: str,
        locale: str,
        variables: dict[str, str],
    ) -> Row | _Refusal:
        external_id = external_id.strip()
        if not external_id:
            return _Refusal("external_id: missing")
        if len(external_id) > MAX_EXTERNAL_ID_CHARS:
            return _Refusal(f"external_id: longer than {MAX_EXTERNAL_ID_CHARS} characters")
        address = number = None
        email = email.strip(" ")
        if email and self.want_email:
            try:
                address = normalize_email(email)
            except EmailNotValidError as exc:
                # The validator's message may quote the address, or a part of it.
                return _Refusal(f"email: {exc}", external_id, "email: not a valid address")
        phone = phone.strip(" ")
        if phone and self.want_phone:
            number = self._phones.e164(phone)
            if number is None:
                return _Refusal("phone: not a valid number", external_id)
        if address is None and number is None:
            return _Refusal("no email or phone for this campaign's channels", external_id)
        key = self._locale(locale)
        if key is None:
            shown = locale.strip() or self.rules.default_locale
            return _Refusal(
                f"locale: no template for {shown[:40]!r}",
                external_id,
                "locale: no template for the row's locale",
            )
        return (
            line,
            external_id,
            address,
            number,
            key,
            orjson.dumps(variables).decode() if variables else "{}",
        )

    def _locale(self, requested: str) -> str | None:
        try:
            return self._locales[requested]
        except KeyError:
            found = resolve_locale(requested, self.rules.locales, self.rules.default_locale)
            if len(self._locales) < _LOCALE_CACHE_SIZE:
                self._locales[requested] = found
            return found
