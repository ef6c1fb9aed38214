"""The full notice, published: one public page per launched campaign and locale.

An SMS is too short for the whole notice, and people who cannot be reached need a notice
posted on the website (PIPA: for at least 30 days); the page is both. It carries every item
the campaign's facts give in that locale, under the headings its laws prescribe (California's
title and five headings, on an English page; which item goes under which heading is data in
`notifier/law/rulesets.toml`), else under each item's description. Only campaign-level facts:
never anything of a recipient.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources

from markupsafe import Markup

from notifier import campaigns, routes
from notifier.campaigns import Campaign
from notifier.checklist import rulesets
from notifier.db import Conn
from notifier.errors import NotFound
from notifier.law import (
    FACTS,
    LAW,
    WORDING_LANGUAGE,
    RuleSet,
    in_wording_language,
    language_of,
)
from notifier.templates.environment import HTML_ENV
from notifier.templates.locales import lookup

_TEMPLATE = HTML_ENV.from_string(
    resources.files(__package__).joinpath("notice_page.html").read_text("utf-8")
)
# The one style sheet of the public pages, inline, and admitted by its hash alone: nothing
# else on the pages may style, run or load anything.
STYLE = Markup(resources.files(__package__).joinpath("page.css").read_text("utf-8"))
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


# The page's own words, by language; a language without them reads English.
LABELS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "incident_ref": "Incident reference",
        "notice_date": "Date of this notice",
        "published_since": "Published on this page since",
        "given_under": "Given under",
        "about": "This page holds the notice as a whole. A message that names this notice "
        "carries a verification code, which this service can confirm as genuine.",
    },
    "ko": {
        "incident_ref": "사고 번호",
        "notice_date": "통지 일자",
        "published_since": "이 페이지 게시 시작",
        "given_under": "근거 법령",
        "about": "이 페이지는 통지 전문입니다. 이 통지를 알리는 메시지에는 확인 코드가 "
        "있으며, 이 서비스에서 진짜인지 확인할 수 있습니다.",
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One item's text, as paragraphs of lines (the facts are plain text)."""

    label: str | None
    paragraphs: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """A heading and the items under it."""

    heading: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticePage:
    """What the page shows: campaign-level facts only."""

    name: str
    incident_ref: str
    locale: str
    title: str | None
    sections: tuple[Section, ...]
    notice_date: date
    published_at: datetime
    laws: tuple[tuple[str, str], ...]
    """(name, version) of each law the campaign is held to."""
    labels: Mapping[str, str]
    labels_lang: str
    """The language of the labels and of the headings that are not prescribed wording."""


async def published(conn: Conn, campaign_id: uuid.UUID) -> Campaign:
    """A launched campaign, or NotFound: the same for an unknown id and a campaign never
    launched (a draft, or one cancelled as a draft). A campaign cancelled after its launch
    keeps its page: people were told, and may come to read and check it."""
    campaign = await campaigns.find(conn, campaign_id)
    if campaign is None or campaign.launched_at is None:
        raise NotFound(f"no published notice for campaign {campaign_id}")
    return campaign


def locale_of(campaign: Campaign, requested: str | None) -> str | None:
    """The facts' locale that serves a requested tag, else the default locale's; None when
    the campaign gives no facts at all."""
    available = [locale for locale, items in campaign.facts.items() if _given(items)]
    found = lookup(requested or "", available) if requested else None
    return found or lookup(campaign.default_locale, available) or min(available, default=None)


async def link(conn: Conn, base: str, campaign_id: uuid.UUID, locale: str | None) -> str | None:
    """The page for a recipient of the campaign, in their locale when there is one; None
    while nothing is published."""
    try:
        campaign = await published(conn, campaign_id)
    except NotFound:
        return None
    found = locale_of(campaign, locale)
    return routes.notice_url(base, campaign.id, found) if found else None


def build(campaign: Campaign, requested: str | None) -> NoticePage:
    """The page of a published campaign in a locale (or its fallback)."""
    locale = locale_of(campaign, requested)
    if locale is None or campaign.launched_at is None:
        raise NotFound(f"no published notice for campaign {campaign.id}")
    facts = campaign.facts[locale]
    laws = rulesets(campaign)
    layout = _layout(laws) if in_wording_language(locale) else None
    published_at = campaign.launched_at.astimezone(UTC).replace(microsecond=0)
    lang = language_of(locale) if language_of(locale) in LABELS else WORDING_LANGUAGE
    return NoticePage(
        name=campaign.name,
        incident_ref=campaign.incident_ref,
        locale=locale,
        title=layout.title.item if layout is not None and layout.title else None,
        sections=_sections(layout, facts, locale),
        notice_date=published_at.date(),
        published_at=published_at,
        laws=tuple((law.name, law.version) for law in laws),
        labels=LABELS[lang],
        labels_lang=lang,
    )


def html(page: NoticePage) -> str:
    """The page as HTML, every fact escaped."""
    return _TEMPLATE.render(page=page, style=STYLE)


def _given(facts: Mapping[str, str]) -> bool:
    return any(_text(facts, item) for item in FACTS)


def _text(facts: Mapping[str, str], item: str) -> str:
    return (facts.get(item) or "").strip()


def _layout(laws: Sequence[RuleSet]) -> RuleSet | None:
    """The first of the campaign's laws that prescribes headings for the notice's items."""
    return next((law for law in laws if law.sections), None)


def _sections(layout: RuleSet | None, facts: Mapping[str, str], locale: str) -> tuple[Section, ...]:
    """Under the prescribed headings (items no heading names follow, each under its own
    heading), else each item under its heading in the locale's language (LAW.heading), in
    the order of LAW.items."""
    given = [item for item in LAW.items if item in FACTS and _text(facts, item)]
    placed: list[Section] = []
    taken: set[str] = set()
    for heading, under in layout.sections if layout is not None else ():
        present = [item for item in under if item in given]
        taken.update(present)
        if present:
            placed.append(_section(heading, present, facts, locale, labelled=len(present) > 1))
    rest = [item for item in given if item not in taken]
    return (*placed, *(_section(LAW.heading(item, locale), [item], facts, locale) for item in rest))


def _section(
    heading: str,
    items: Collection[str],
    facts: Mapping[str, str],
    locale: str,
    *,
    labelled: bool = False,
) -> Section:
    return Section(
        heading=heading,
        items=tuple(
            Item(
                label=LAW.heading(item, locale) if labelled else None,
                paragraphs=_paragraphs(_text(facts, item)),
            )
            for item in items
        ),
    )


def _paragraphs(text: str) -> tuple[tuple[str, ...], ...]:
    """Blank lines part paragraphs; other line breaks are kept within one."""
    blocks = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    return tuple(tuple(block.strip("\n").split("\n")) for block in blocks if block.strip())
