"""What the law asks of a breach notice, read from the rule sets in `rulesets.toml`.

The rules are data: each jurisdiction's duties (the notice to each person and its items, a
substitute notice, the report to an authority), with the article each comes from and the
date the version took effect. Nothing else in the service names a law.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    """One notice item a law requires, and where it says so."""

    item: str
    article: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Duty:
    """A duty with a deadline counted from awareness (None: "without undue delay")."""

    what: str
    article: str
    deadline_hours: float | None = None
    threshold: int | None = None
    """The duty applies from this many people affected (None: whatever the number)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    """One jurisdiction's breach-notice law, as in force from `effective`."""

    id: str
    name: str
    effective: date
    source: str
    authority: str
    notice: Duty
    items: tuple[Requirement, ...]
    title: Requirement | None = None
    headings: tuple[str, ...] = ()
    headings_article: str = ""
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Heading -> the notice items under it, for a notice laid out under `headings`."""
    substitute: Duty | None = None
    report: Duty | None = None

    @property
    def version(self) -> str:
        """How a campaign records the version it was checked against."""
        return f"{self.id}@{self.effective.isoformat()}"


def _duty(raw: Mapping[str, Any], what: str = "") -> Duty:
    hours = raw.get("deadline_hours")
    return Duty(
        what=raw.get("what", what),
        article=raw["article"],
        deadline_hours=float(hours) if hours is not None else None,
        threshold=raw.get("threshold"),
    )


def _ruleset(raw: Mapping[str, Any], items: Mapping[str, str]) -> RuleSet:
    notice = raw["notice"]
    required = tuple(Requirement(item=r["item"], article=r["article"]) for r in notice["items"])
    unknown = [r.item for r in required if r.item not in items]
    if unknown:
        raise ValueError(f"rule set {raw['id']} names unknown notice items {unknown}")
    title = notice.get("title")
    headings = notice.get("headings", {})
    sections = _sections(raw["id"], notice.get("sections", {}), headings.get("text", ()), items)
    return RuleSet(
        id=raw["id"],
        name=raw["name"],
        effective=raw["effective"],
        source=raw["source"],
        authority=raw["authority"],
        notice=_duty(notice, "notify each person affected"),
        items=required,
        title=Requirement(item=title["text"], article=title["article"]) if title else None,
        headings=tuple(headings.get("text", ())),
        headings_article=headings.get("article", ""),
        sections=sections,
        substitute=_duty(raw["substitute"]) if "substitute" in raw else None,
        report=_duty(raw["report"]) if "report" in raw else None,
    )


def _sections(
    ruleset_id: str,
    raw: Mapping[str, Sequence[str]],
    headings: Sequence[str],
    items: Mapping[str, str],
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The items under each prescribed heading: the headings as prescribed, in their order,
    each item known and placed once."""
    if raw and list(raw) != list(headings):
        raise ValueError(f"rule set {ruleset_id}: sections must name the headings, in order")
    placed = [item for under in raw.values() for item in under]
    unknown = sorted(set(placed) - set(items))
    if unknown or len(placed) != len(set(placed)):
        raise ValueError(f"rule set {ruleset_id}: sections place unknown or repeated items")
    return tuple((heading, tuple(under)) for heading, under in raw.items())


@dataclass(frozen=True, slots=True)
class Law:
    """Every rule set, every version, and the notice items they may require."""

    items: Mapping[str, str]
    """Notice item -> what it is (each is also a template variable)."""
    rulesets: tuple[RuleSet, ...]
    headings: Mapping[str, Mapping[str, str]]
    """Language -> notice item -> its heading in that language, where one is given."""

    @classmethod
    def parse(cls, text: str) -> Law:
        raw = tomllib.loads(text)
        items = MappingProxyType(dict(raw["items"]))
        headings = {lang: dict(by_item) for lang, by_item in raw.get("headings", {}).items()}
        for lang, by_item in headings.items():
            if unknown := sorted(set(by_item) - set(items)):
                raise ValueError(f"headings.{lang} names unknown notice items {unknown}")
        rulesets = tuple(_ruleset(r, items) for r in raw["ruleset"])
        return cls(items, rulesets, MappingProxyType(headings))

    def heading(self, item: str, locale: str) -> str:
        """An item as a heading in a locale's language, else its description."""
        found = self.headings.get(language_of(locale), {}).get(item)
        if found:
            return found
        description = self.items[item]
        return description[:1].upper() + description[1:]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.rulesets)

    def in_force(self, ruleset_id: str, on: datetime | date) -> RuleSet | None:
        """The version of a rule set in force on a day (the latest that took effect by
        then); None for an unknown id or a day before its first version."""
        day = on.date() if isinstance(on, datetime) else on
        versions = [r for r in self.rulesets if r.id == ruleset_id and r.effective <= day]
        return max(versions, key=lambda r: r.effective, default=None)

    def versions(self, ids: Sequence[str], on: datetime | date) -> dict[str, str]:
        """Rule set id -> the version in force on a day, for those that have one."""
        found = {i: self.in_force(i, on) for i in ids}
        return {i: r.version for i, r in found.items() if r is not None}


# The language the laws' prescribed wording (a title, headings) is written in.
WORDING_LANGUAGE = "en"


def language_of(locale: str) -> str:
    """The language of a locale (a BCP 47 tag): "ko" of "ko-KR"."""
    return locale.replace("_", "-").lower().partition("-")[0]


def in_wording_language(locale: str) -> bool:
    """Whether a locale (a BCP 47 tag) is in the language of the prescribed wording, in any
    region: notices in it must show that wording."""
    return language_of(locale) == WORDING_LANGUAGE


LAW = Law.parse(resources.files(__package__).joinpath("rulesets.toml").read_text("utf-8"))
# The facts a campaign gives per locale: the notice items the service cannot fill itself.
FACTS = frozenset(LAW.items) - {"notice_date", "verify"}
