"""SMS length: how many segments a text takes, and the campaign's segment budget."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from notifier.templates.environment import TEXT_ENV, literal_text

# What an SMS keeps of the control characters: line feeds only.
SMS_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]+")

# GSM 03.38: the basic set costs one septet, the extension table two (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("\f^{}\\[~]|€")
_GSM = _GSM_BASIC | _GSM_EXTENDED


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` takes: GSM-7 (160, or 153 per part when split) when
    every character is in the GSM set, else UCS-2 (70, or 67 per part)."""
    if not text:
        return 0
    if _GSM.issuperset(text):
        doubles = sum(map(text.count, _GSM_EXTENDED))
        units, single, per_part = len(text) + doubles, 160, 153
    else:
        units, single, per_part = len(text.encode("utf-16-le")) // 2, 70, 67
        doubles = units - len(text)
    if units <= single:
        return 1
    if not doubles:
        return -(-units // per_part)
    # An escape pair or a surrogate pair is never split across two parts.
    gsm = per_part == 153
    segments, used = 1, 0
    for c in text:
        size = 2 if (c in _GSM_EXTENDED if gsm else c > "\uffff") else 1
        if used + size > per_part:
            segments += 1
            used = 0
        used += size
    return segments


def check_sms_budget(templates: Mapping[str, Any], budget: int) -> list[dict[str, str]]:
    """Problems for SMS templates whose own text, before any value is filled in, already
    takes more segments than the campaign allows."""
    problems: list[dict[str, str]] = []
    for locale, parts in templates.get("sms", {}).items():
        used = sms_segments(literal_text(TEXT_ENV.parse(parts["text"])))
        if used > budget:
            problems.append(
                {
                    "field": f"templates.sms.{locale}.text",
                    "message": f"takes {used} SMS segments before any value is filled in; "
                    f"the campaign allows {budget} (sms_max_segments)",
                }
            )
    return problems
