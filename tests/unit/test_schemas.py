"""The API's bodies as models: errors by field as the API has always named them, output as
the API has always rendered it, and a document that describes them once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from notifier.api.openapi import document
from notifier.errors import ValidationFailed
from notifier.schemas.campaigns import EXAMPLE, LINK_DOMAINS, Campaign, CampaignCreate
from notifier.schemas.common import Problem, validated
from notifier.schemas.keys import KeyCreate
from tests import factories

ALLOWED = {LINK_DOMAINS: frozenset({"notice.example.com"})}


def errors(body: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        validated(CampaignCreate, body, context=ALLOWED)
    return [(e["field"], e["message"]) for e in caught.value.errors or []]


def test_the_documented_example_is_a_valid_campaign() -> None:
    spec = validated(CampaignCreate, EXAMPLE, context=ALLOWED)
    assert spec.default_region == "KR" and spec.sms_max_segments == 3


def test_every_problem_is_reported_at_once_by_its_field() -> None:
    body = factories.campaign(
        channels=["email", "fax"], rate_limit_per_second=-1, colour="red", default_region="zz"
    )
    del body["name"]
    assert [field for field, _ in errors(body)] == [
        "name",
        "channels",
        "default_region",
        "rate_limit_per_second",
        "colour",
    ]
    assert ("colour", "unknown field") in errors(body)


def test_template_problems_keep_their_own_fields() -> None:
    body = factories.campaign(variables=["verification_code"], default_locale="ko")
    body["templates"]["sms"]["ko"]["text"] = "Visit https://elsewhere.example"
    found = errors(body)
    assert found[0] == ("variables[0]", "'verification_code' is supplied by the service")
    assert {field for field, _ in found} >= {"variables[0]", "templates.sms.ko.text"}


def test_links_off_the_allow_list_are_refused_even_without_a_context() -> None:
    body = factories.campaign()
    body["templates"]["sms"]["en"]["text"] = "See notice.example.com {{ verification_code }}"
    with pytest.raises(ValidationFailed):
        validated(CampaignCreate, body)
    validated(CampaignCreate, body, context=ALLOWED)


@pytest.mark.parametrize("value", [True, "5", 0, 100_001])
def test_rates_are_numbers_within_bounds(value: object) -> None:
    assert [f for f, _ in errors(factories.campaign(rate_limit_per_second=value))] == [
        "rate_limit_per_second"
    ]


def test_a_body_that_is_not_an_object_is_refused_without_field_errors() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validated(KeyCreate, ["name"])
    assert caught.value.errors is None


def test_a_campaign_renders_as_orjson_always_did() -> None:
    at = datetime(2026, 11, 30, 1, 2, 3, 450000, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "이름",
        "incident_ref": "INC-1",
        "state": "draft",
        "channels": ["email"],
        "default_locale": "ko",
        "default_region": None,
        "variables": ["name"],
        "templates": EXAMPLE["templates"],
        "rate_limit_per_second": 12.5,
        "fallback": {},
        "sms_max_segments": 3,
        "discovered_at": at.replace(microsecond=0),
        "jurisdictions": ["kr-pipa"],
        "rule_versions": {"kr-pipa": "kr-pipa@2023-09-15"},
        "facts": {"ko": {"data_items": "이름, 이메일"}},
        "dedupe_contacts": True,
        "created_at": at,
        "launched_at": at.replace(microsecond=0),
        "completed_at": None,
        "recipients": 7,
        "preparing": False,
        "counts": {"email": {"pending": 1, "sent": 2}},
        "merged": {"email": 1},
        "rate_per_second": 0.0,
        "eta_seconds": None,
    }
    before = orjson.dumps(
        fields | {"id": str(fields["id"])}, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
    )
    assert Campaign.model_validate(fields).model_dump_json().encode() == before


def test_a_problem_leaves_out_what_it_does_not_have() -> None:
    doc = Problem(type="/problems/x", title="X", status=400, detail="d")
    assert orjson.loads(doc.model_dump_json(exclude_none=True)) == {
        "type": "/problems/x",
        "title": "X",
        "status": 400,
        "detail": "d",
    }


def test_the_document_names_each_schema_once_and_has_no_boolean_constants() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    assert {"CampaignCreate", "Campaign", "Problem", "Verification", "KeyCreate"} <= set(schemas)
    assert schemas["CampaignCreate"]["properties"]["rate_limit_per_second"]["anyOf"][0][
        "maximum"
    ] == pytest.approx(100_000)
    assert b'"const":true' not in orjson.dumps(doc)
