"""The content checklist: for each law a campaign is held to, each channel and each locale,
which of the notice's required items its templates carry and which are missing.

An email must carry every item the law names (a template carries an item when it uses the
item's variable and the campaign has its text for that locale); where the law prescribes a
title and headings (California), the email must show them. An SMS is too short for the whole
notice: it must carry the code and the link to the full notice: {{ verify_url }} (the page
that checks the code leads to the notice), or {{ notice_url }} with {{ verification_code }}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from notifier.campaigns import Campaign, channels_of
from notifier.law import LAW, RuleSet, in_wording_language
from notifier.models import Channel
from notifier.templates.checks import template_variables

# The items the service fills in itself: nothing to give in the facts.
_SERVICE_ITEMS = frozenset({"notice_date"})
# An SMS carries the full notice's link as the verify page (which leads to it), or as the
# notice's own link with the code beside it.
_CODE_AND_NOTICE = frozenset({"verification_code", "notice_url"})
# Adds one check: (item, requirement, article, carried).
_Add = Callable[[str, str, str, bool], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One requirement of one law, for one channel and locale of the campaign."""

    jurisdiction: str
    version: str
    channel: Channel
    locale: str
    item: str
    requirement: str
    article: str
    carried: bool


def rulesets(campaign: Campaign) -> list[RuleSet]:
    """The versions of the campaign's laws: those recorded on it, else those in force now."""
    on = campaign.discovered_at or datetime.now(UTC)
    found = []
    for ruleset_id in campaign.jurisdictions:
        recorded = campaign.rule_versions.get(ruleset_id)
        match = next((r for r in LAW.rulesets if r.version == recorded), None)
        match = match or LAW.in_force(ruleset_id, on)
        if match is not None:
            found.append(match)
    return found


def check(campaign: Campaign) -> list[Check]:
    """Every requirement of every law, channel and locale, carried or not."""
    used = template_variables(campaign.templates)
    checks: list[Check] = []
    for ruleset in rulesets(campaign):
        for channel in channels_of(campaign):
            for locale in sorted(campaign.templates.get(str(channel), {})):
                add = partial(
                    _add,
                    checks,
                    jurisdiction=ruleset.id,
                    version=ruleset.version,
                    channel=channel,
                    locale=locale,
                )
                names = used.get((str(channel), locale), set())
                if channel == Channel.SMS:
                    verify = LAW.items["verify"]
                    carried = "verify_url" in names or names >= _CODE_AND_NOTICE
                    add("verify", verify, ruleset.notice.article, carried)
                    continue
                facts = campaign.facts.get(locale, {})
                for rule in ruleset.items:
                    given = rule.item in _SERVICE_ITEMS or bool(facts.get(rule.item))
                    add(rule.item, LAW.items[rule.item], rule.article, rule.item in names and given)
                if in_wording_language(locale):
                    _wording(ruleset, campaign.templates["email"][locale], add)
    return checks


def _add(
    checks: list[Check],
    item: str,
    requirement: str,
    article: str,
    carried: bool,
    **where: Any,
) -> None:
    checks.append(
        Check(item=item, requirement=requirement, article=article, carried=carried, **where)
    )


def _wording(ruleset: RuleSet, parts: Mapping[str, str], add: _Add) -> None:
    """The title and headings a law prescribes, looked for in the email's text."""
    body = "\n".join(parts.get(key) or "" for key in ("subject", "text", "html"))
    if ruleset.title is not None:
        title = ruleset.title.item
        add("title", f'titled "{title}"', ruleset.title.article, title in body)
    for heading in ruleset.headings:
        add("heading", f'the heading "{heading}"', ruleset.headings_article, heading in body)
