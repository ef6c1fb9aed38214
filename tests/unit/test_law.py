"""The law as data: rule sets with their articles and versions, read from one file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources

import pytest

from notifier.law import FACTS, LAW, Law
from notifier.templates.checks import NOTICE_VARIABLES

LAW_TEXT = resources.files("notifier.law").joinpath("rulesets.toml").read_text("utf-8")


def test_the_three_rule_sets_cite_an_article_for_every_duty_and_item() -> None:
    assert LAW.ids == {"kr-pipa", "eu-gdpr", "us-ca"}
    for ruleset in LAW.rulesets:
        assert ruleset.notice.article and ruleset.source and ruleset.authority
        assert ruleset.items and all(r.article and r.item in LAW.items for r in ruleset.items)
        assert ruleset.report is not None and ruleset.report.article


def test_what_each_law_asks_is_as_written() -> None:
    pipa = LAW.in_force("kr-pipa", date(2025, 11, 29))
    assert pipa is not None and pipa.notice.deadline_hours == 72
    assert pipa.report is not None and pipa.report.threshold == 1000
    assert {r.item for r in pipa.items} >= {"data_items", "what_you_can_do", "contact_point"}
    gdpr = LAW.in_force("eu-gdpr", date(2025, 11, 29))
    assert gdpr is not None and gdpr.notice.deadline_hours is None  # without undue delay
    assert "likely_consequences" in {r.item for r in gdpr.items}
    ca = LAW.in_force("us-ca", date(2025, 11, 29))
    assert ca is not None and ca.title is not None and ca.title.item == "Notice of Data Breach"
    assert ca.headings[0] == "What Happened" and len(ca.headings) == 5
    assert ca.report is not None and ca.report.threshold == 501


def test_an_amended_law_is_a_new_version_and_a_new_law_is_data() -> None:
    text = (
        LAW_TEXT
        + """
[[ruleset]]
id = "kr-pipa"
name = "Republic of Korea: Personal Information Protection Act"
effective = 2030-01-01
source = "a later amendment"
authority = "PIPC"
[ruleset.notice]
deadline_hours = 48
article = "art. 34(1)"
items = [{ item = "remedies", article = "art. 34(1)(6)" }]

[[ruleset]]
id = "jp-appi"
name = "Japan"
effective = 2022-04-01
source = "APPI art. 26"
authority = "PPC"
[ruleset.notice]
article = "APPI art. 26(2)"
items = [{ item = "data_items", article = "APPI art. 26(2)" }]
"""
    )
    law = Law.parse(text)
    assert "jp-appi" in law.ids
    before = law.in_force("kr-pipa", datetime(2029, 12, 31, tzinfo=UTC))
    after = law.in_force("kr-pipa", datetime(2030, 1, 2, tzinfo=UTC))
    assert before is not None and before.version == "kr-pipa@2023-09-15"
    assert after is not None and after.version == "kr-pipa@2030-01-01"
    assert after.notice.deadline_hours == 48
    assert law.in_force("kr-pipa", date(2001, 1, 1)) is None


def test_a_rule_naming_an_unknown_item_is_refused() -> None:
    bad = LAW_TEXT.replace('item = "remedies"', 'item = "horoscope"')
    with pytest.raises(ValueError, match="horoscope"):
        Law.parse(bad)


def test_facts_are_template_variables() -> None:
    assert FACTS <= NOTICE_VARIABLES and "notice_date" in NOTICE_VARIABLES
    assert "verify" not in FACTS


def test_items_have_headings_in_the_languages_given_else_their_description() -> None:
    assert LAW.heading("data_items", "ko-KR") == "유출된 개인정보 항목"
    assert LAW.heading("data_items", "en") == "Which items of personal information were involved"
    assert LAW.heading("data_items", "fr") == LAW.heading("data_items", "en")
    assert set(LAW.headings["ko"]) == set(LAW.items)  # every item, in Korean
    with pytest.raises(ValueError, match="no_such_item"):
        Law.parse(LAW_TEXT.replace("[headings.ko]\n", '[headings.ko]\nno_such_item = "x"\n'))
