"""The benchmark's campaign: Korean, English and Japanese templates on both channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_EMAIL: dict[str, dict[str, str]] = {
    "ko": {
        "subject": "[중요] {{ name }}님, 개인정보 노출 안내",
        "text": "{{ name }}님({{ account_tier }} 회원), 고객님의 계정 정보가 노출되었습니다.\n"
        "이 안내가 진짜인지 확인하세요: {{ verify_url }}\n"
        "확인 코드: {{ verification_code }}\n",
        "html": "<p>{{ name }}님({{ account_tier }} 회원), 고객님의 계정 정보가 "
        "노출되었습니다.</p>\n<p>이 안내가 진짜인지 확인하세요: "
        '<a href="{{ verify_url }}">{{ verify_url }}</a></p>\n'
        "<p>확인 코드: <b>{{ verification_code }}</b></p>\n",
    },
    "en": {
        "subject": "Important: {{ name }}, your account data was exposed",
        "text": "Dear {{ name }} ({{ account_tier }} member), data of your account was "
        "exposed.\nCheck this notice is genuine: {{ verify_url }}\n"
        "Verification code: {{ verification_code }}\n",
    },
    "ja": {
        "subject": "【重要】{{ name }}様 個人情報流出のお知らせ",
        "text": "{{ name }}様 ({{ account_tier }}会員)、お客様のアカウント情報が流出しました。\n"
        "このお知らせが本物か確認できます: {{ verify_url }}\n"
        "確認コード: {{ verification_code }}\n",
    },
}

_SMS: dict[str, dict[str, str]] = {
    "ko": {"text": "[안내] {{ name }}님 개인정보 노출. 확인코드 {{ verification_code }}"},
    "en": {"text": "Notice for {{ name }}: account data exposed. Code {{ verification_code }}"},
    "ja": {"text": "【お知らせ】{{ name }}様 情報流出。確認コード {{ verification_code }}"},
}


def campaign_body(
    channels: Sequence[str], label: str, *, rate_cap: float | None = None
) -> dict[str, Any]:
    """A create-campaign body sending on `channels`; `label` tells the runs apart, and
    `rate_cap` is the campaign's own cap (messages per second on each channel)."""
    templates = {"email": _EMAIL, "sms": _SMS}
    body: dict[str, Any] = {
        "name": f"Benchmark: account data exposure ({label})",
        "incident_ref": "BENCH-2025-0001",
        "channels": list(channels),
        "default_locale": "ko",
        "default_region": "KR",
        "variables": ["name", "account_tier"],
        "templates": {channel: templates[channel] for channel in channels},
    }
    if rate_cap is not None:
        body["rate_limit_per_second"] = rate_cap
    return body
