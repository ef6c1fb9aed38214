"""The link allow-list: a template's own text may name only domains the service allows."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from notifier.templates.environment import environment_for, literal_text

# A domain name as people read one in a message (with or without a scheme, inside a link or
# an email address): labels (Unicode ones too) and a top-level domain of ASCII letters, an
# IDN's xn-- form, or one of the Unicode top-level domains of the region. (A Unicode
# top-level domain in general would also match Korean sentences run together at a period.)
_UNICODE_TLDS = ("한국", "中国", "中國", "香港", "台湾", "台灣", "新加坡", "рф")
_DOMAIN = re.compile(
    r"(?<![\w.-])((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"(?:[a-z]{2,63}|xn--[a-z0-9-]{2,59}|" + "|".join(_UNICODE_TLDS) + r"))(?![\w-])",
    re.IGNORECASE,
)


def linked_domains(text: str) -> list[str]:
    """Every domain name that a text names, lowercased, in order of appearance."""
    return [m.group(1).lower() for m in _DOMAIN.finditer(text)]


def allowed_domain(domain: str, allowed: Collection[str]) -> bool:
    """Whether a domain is on the allow-list, itself or as a subdomain of an entry."""
    return any(domain == a or domain.endswith("." + a) for a in allowed)


def check_links(templates: Mapping[str, Any], allowed: Collection[str]) -> list[dict[str, str]]:
    """Problems for template text that names a domain outside the allow-list. Only the
    template's own text is read; {{ verify_url }} is the service's own address."""
    problems: list[dict[str, str]] = []
    for channel, by_locale in templates.items():
        for locale, parts in by_locale.items():
            for key, source in parts.items():
                literal = literal_text(environment_for(key).parse(source))
                for domain in dict.fromkeys(linked_domains(literal)):
                    if not allowed_domain(domain, allowed):
                        problems.append(
                            {
                                "field": f"templates.{channel}.{locale}.{key}",
                                "message": f"names {domain}, which is not on the link "
                                "allow-list (NOTIFIER_LINK_DOMAINS)",
                            }
                        )
    return problems
