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

MAX_VALUE_CHARS = 1000
MAX_EXTERNAL_ID_CHARS = 255
MAX_COLUMNS = 200
MAX_ERRORS = 1000

_LOCALE_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientRules:
    """What a campaign accepts: its channels, the locales with a template on every channel,
    the default locale and phone region, and the extra columns its templates use."""

    channels: frozenset[str]
    locales: frozenset[str]
    default_locale: str
    default_region: str | None = None
    variables: frozenset[str] = frozenset()


class RowChecker:
    """Checks records against a campaign's rules; counts and reports the rejected ones."""

    def __init__(self, rules: RecipientRules) -> None:
        self.rules = rules
        self.rejected = 0
        self.errors: list[dict[str, Any]] = []
        self.want_email = "email" in rules.channels
        self.want_phone = "sms" in rules.channels
        self.variables = tuple(sorted(rules.variables))
        self._phones = PhoneNormalizer(rules.default_region)
        self._locales: dict[str, str | None] = {}

    def reject(self, line: int, message: str) -> None:
        """Count a refused record; the first MAX_ERRORS are reported by line."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "message": message})

    def accept(
        self,
        line: int,
        external_id: str,
        email: str,
        phone: str,
        locale: str,
        variables: dict[str, str],
    ) -> Row | str:
        """The row to store, or why it is rejected."""
        external_id = external_id.strip()
        if not external_id:
            return "external_id: missing"
        if len(external_id) > MAX_EXTERNAL_ID_CHARS:
            return f"external_id: longer than {MAX_EXTERNAL_ID_CHARS} characters"
        address = number = None
        email = email.strip(" ")
        if email and self.want_email:
            try:
                address = normalize_email(email)
            except EmailNotValidError as exc:
                return f"email: {exc}"
        phone = phone.strip(" ")
        if phone and self.want_phone:
            number = self._phones.e164(phone)
            if number is None:
                return "phone: not a valid number"
        if address is None and number is None:
            return "no email or phone for this campaign's channels"
        key = self._locale(locale)
        if key is None:
            shown = locale.strip() or self.rules.default_locale
            return f"locale: no template for {shown[:40]!r}"
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
