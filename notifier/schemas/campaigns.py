"""Campaign bodies: what creation accepts, a campaign as the API shows it, lists, uploads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import phonenumbers
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from notifier.law import FACTS, LAW
from notifier.models import LOCALE_HINT, LOCALE_TAG, CampaignState, Channel, DeliveryStatus
from notifier.schemas.common import Body, Hint, LineError, Page, View, problems_error
from notifier.templates.checks import NOTICE_VARIABLES, validate_templates, variables_used
from notifier.templates.links import check_links
from notifier.templates.sms import check_sms_budget

# Validation context key: the domains template text may name (settings decide). Without it
# the allow-list is empty, so a caller that forgets it refuses links rather than allow them.
LINK_DOMAINS = "link_domains"

# Upload columns with a meaning of their own, so no template variable may take their name.
RESERVED_COLUMNS = frozenset({"external_id", "email", "phone", "locale"})
MAX_RATE = 100_000.0
# SMS segments one message may take unless the campaign says otherwise: a Korean notice with
# its link fits in two or three UCS-2 segments of 67 characters.
DEFAULT_SMS_SEGMENTS = 3
MAX_SMS_SEGMENTS = 10

NO_CONTROLS = r"^[^\x00-\x1f]*$"
COLUMN_NAME = "^[A-Za-z_][A-Za-z0-9_]{0,63}$"

# channel → locale → part → template source, as stored and shown.
Templates = dict[str, dict[str, dict[str, str]]]
# locale → notice item → its text in that locale.
Facts = dict[str, dict[str, str]]
MAX_FACT_CHARS = 4000
# A clock a little ahead of the server's is not "the future".
CLOCK_SKEW = timedelta(minutes=5)


class EmailTemplate(BaseModel):
    """An email notice in one locale."""

    model_config = ConfigDict(extra="forbid")

    subject: str
    text: str
    html: str | None = None


class SmsTemplate(BaseModel):
    """An SMS notice in one locale."""

    model_config = ConfigDict(extra="forbid")

    text: str


class TemplateSet(BaseModel):
    """Templates by channel, then by locale (a BCP 47 tag)."""

    model_config = ConfigDict(extra="forbid")

    email: dict[str, EmailTemplate] | None = None
    sms: dict[str, SmsTemplate] | None = None


def _distinct(channels: list[Channel]) -> list[Channel]:
    if len(set(channels)) != len(channels):
        raise PydanticCustomError("repeated", "a channel is named twice")
    return channels


def _region(region: str) -> str:
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise PydanticCustomError("region", "not a region phone numbers are known for")
    return region.upper()


def _column(name: str) -> str:
    if name in RESERVED_COLUMNS:
        raise PydanticCustomError("reserved", "a column with a meaning of its own")
    return name


def _jurisdictions(ids: list[str]) -> list[str]:
    unknown = sorted(set(ids) - LAW.ids)
    if unknown:
        raise PydanticCustomError(
            "jurisdiction",
            "unknown rule set {unknown}; known: {known}",
            {"unknown": ", ".join(unknown), "known": ", ".join(sorted(LAW.ids))},
        )
    if len(set(ids)) != len(ids):
        raise PydanticCustomError("repeated", "a rule set is named twice")
    return ids


def _past(at: datetime) -> datetime:
    if at > datetime.now(UTC) + CLOCK_SKEW:
        raise PydanticCustomError("future", "in the future; when did the company become aware?")
    return at


def _facts(facts: Facts) -> Facts:
    problems = []
    for locale, items in facts.items():
        if not LOCALE_TAG.fullmatch(locale):
            problems.append({"field": f"facts.{locale}", "message": "locale " + LOCALE_HINT})
        for item, text in items.items():
            field = f"facts.{locale}.{item}"
            if item not in FACTS:
                known = ", ".join(sorted(FACTS))
                problems.append({"field": field, "message": f"not a notice item; one of {known}"})
            elif not text.strip() or len(text) > MAX_FACT_CHARS:
                message = f"must be 1 to {MAX_FACT_CHARS} characters"
                problems.append({"field": field, "message": message})
    if problems:
        raise problems_error(problems)
    return facts


class CampaignCreate(Body):
    """A request to create a campaign (a draft until it is launched)."""

    invalid: ClassVar[str] = "the campaign is not valid"

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_CONTROLS),
        Hint("required, 1 to 200 characters, no control characters"),
    ]
    incident_ref: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_CONTROLS),
        Hint("required, 1 to 100 characters, no control characters"),
    ]
    channels: Annotated[
        list[Channel],
        Field(min_length=1, max_length=len(Channel), json_schema_extra={"uniqueItems": True}),
        AfterValidator(_distinct),
        Hint('a non-empty list of "email", "sms", each once'),
    ]
    default_locale: Annotated[
        str,
        Field(pattern=f"^(?:{LOCALE_TAG.pattern})$", examples=["ko"]),
        Hint(LOCALE_HINT),
    ]
    default_region: Annotated[
        Annotated[str, Field(pattern="^[A-Za-z]{2}$"), AfterValidator(_region)] | None,
        Field(description="the region of phone numbers written without +, e.g. KR"),
        Hint("an ISO 3166 region such as 'KR'"),
    ] = None
    variables: Annotated[
        list[Annotated[str, Field(pattern=COLUMN_NAME), AfterValidator(_column)]],
        Field(default_factory=list, description="extra recipient columns the templates use"),
        Hint("a list of column names (letters, digits, _)"),
    ]
    rate_limit_per_second: Annotated[
        Annotated[float, Field(gt=0, le=MAX_RATE, strict=True)] | None,
        Field(description="this campaign's own cap below the provider rate, per second"),
        Hint(f"a number in (0, {MAX_RATE:g}]"),
    ] = None
    fallback: Annotated[
        dict[Literal["email_failed"], Literal["sms"]],
        Field(default_factory=dict, description="an SMS to anyone whose email fails for good"),
        Hint('only {"email_failed": "sms"}'),
    ]
    sms_max_segments: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_SMS_SEGMENTS,
            strict=True,
            description="the most SMS segments one message may take; longer ones fail",
        ),
        Hint(f"an integer from 1 to {MAX_SMS_SEGMENTS}"),
    ] = DEFAULT_SMS_SEGMENTS
    discovered_at: Annotated[
        Annotated[AwareDatetime, AfterValidator(_past)] | None,
        Field(description="when the company became aware of the breach: deadlines run from it"),
        Hint("a date and time with its UTC offset, not in the future"),
    ] = None
    jurisdictions: Annotated[
        list[str],
        Field(
            default_factory=list,
            json_schema_extra={"uniqueItems": True, "items": {"enum": sorted(LAW.ids)}},
            description="the rule sets whose duties apply (notifier/law/rulesets.toml)",
        ),
        AfterValidator(_jurisdictions),
        Hint("a list of rule set ids: " + ", ".join(sorted(LAW.ids))),
    ]
    facts: Annotated[
        Facts,
        Field(
            default_factory=dict,
            description="the notice's items by locale (what happened, which data, ...), each "
            "a template variable",
        ),
        AfterValidator(_facts),
        Hint("an object of locales, each an object of notice items and their text"),
    ]
    dedupe_contacts: Annotated[
        bool,
        Field(
            strict=True,
            description="accounts sharing an email address or a phone number (and a locale) "
            "get one message per contact; each keeps its own delivery, which shares the send",
        ),
        Hint("true or false"),
    ] = True
    # Last, so that its checks see every other field already validated.
    templates: Templates

    @field_validator("templates", mode="plain", json_schema_input_type=TemplateSet)
    @classmethod
    def _templates(cls, value: Any, info: ValidationInfo) -> Templates:
        """The checks of notifier.templates, run once the fields they depend on are valid."""
        given = info.data
        if "channels" not in given or "default_locale" not in given:
            return value  # type: ignore[no-any-return]  # refused at those fields already
        needed = [str(c) for c in given["channels"]]
        if given.get("fallback") and "sms" not in needed:
            needed.append("sms")  # the fallback sends SMS, so it needs an SMS template
        problems = validate_templates(
            value,
            channels=needed,
            default_locale=given["default_locale"],
            variables=given.get("variables", []),
        )
        if not problems and "sms_max_segments" in given:
            problems += check_sms_budget(value, given["sms_max_segments"])
        if not problems:
            problems += check_links(value, (info.context or {}).get(LINK_DOMAINS, ()))
        if problems:
            raise problems_error(problems)
        return value  # type: ignore[no-any-return]

    @model_validator(mode="after")
    def _duties(self) -> CampaignCreate:
        """What the incident's facts need from each other and from the templates."""
        problems = []
        if self.jurisdictions and self.discovered_at is None:
            message = "required when jurisdictions are named: deadlines run from it"
            problems.append({"field": "discovered_at", "message": message})
        for ruleset in self.jurisdictions:
            if self.discovered_at and LAW.in_force(ruleset, self.discovered_at) is None:
                message = f"{ruleset} has no version in force on discovered_at"
                problems.append({"field": "jurisdictions", "message": message})
        for locale, used in variables_used(self.templates).items():
            given = self.facts.get(locale)
            if given is None and (self.facts or self.jurisdictions):
                message = f"missing: the campaign sends in {locale}"
                problems.append({"field": f"facts.{locale}", "message": message})
                continue
            for item in sorted((used & NOTICE_VARIABLES) - {"notice_date"} - set(given or ())):
                message = f"missing: the {locale} templates use it"
                problems.append({"field": f"facts.{locale}.{item}", "message": message})
        if problems:
            raise problems_error(problems)
        return self


# What a draft's owner may change after creating it. The rest (channels, locales, variables,
# region, fallback) decided how its uploaded rows were checked, and stays.
EDITABLE = (
    "name",
    "templates",
    "facts",
    "discovered_at",
    "jurisdictions",
    "rate_limit_per_second",
    "sms_max_segments",
    "dedupe_contacts",
)


class CampaignUpdate(Body):
    """Changes to a draft campaign: any of its editable fields, each as on creation. The
    campaign they make is checked whole, as a new one would be."""

    invalid: ClassVar[str] = "the change is not valid"

    name: str | None = None
    templates: Templates | None = None
    facts: Facts | None = None
    discovered_at: AwareDatetime | None = None
    jurisdictions: list[str] | None = None
    rate_limit_per_second: Annotated[float, Field(gt=0, le=MAX_RATE, strict=True)] | None = None
    sms_max_segments: Annotated[int, Field(ge=1, le=MAX_SMS_SEGMENTS, strict=True)] | None = None
    dedupe_contacts: Annotated[bool, Field(strict=True)] | None = None


class Campaign(View):
    """A campaign with its counts and progress."""

    id: uuid.UUID
    name: str
    incident_ref: str
    state: CampaignState
    channels: list[Channel]
    default_locale: str
    default_region: str | None
    variables: list[str]
    templates: Templates
    rate_limit_per_second: float | None
    fallback: dict[str, str]
    sms_max_segments: int
    discovered_at: datetime | None
    jurisdictions: list[str]
    rule_versions: dict[str, str] = Field(
        description="the version of each rule set the campaign is held to (id@effective date)"
    )
    facts: Facts
    dedupe_contacts: bool
    created_at: datetime
    launched_at: datetime | None
    completed_at: datetime | None
    recipients: int
    preparing: bool = Field(
        description="launched, and deliveries are still being created a chunk at a time "
        "(counts grow; eta_seconds is null until they are all there)"
    )
    counts: dict[Channel, dict[DeliveryStatus, int]] = Field(
        description="deliveries by channel and status, every status present"
    )
    merged: dict[Channel, int] = Field(
        description="per channel, the deliveries that share another account's send to the "
        "same contact instead of being sent (contact dedupe); counted in `counts` too"
    )
    rate_per_second: float
    eta_seconds: float | None


class Override(Body):
    """Launch although the checklist finds items missing, saying why."""

    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=10, max_length=1000),
        Hint("required, 10 to 1000 characters: why the notice goes out without them"),
    ]


class LaunchRequest(Body):
    """What a launch may carry: an override of the checklist's missing items."""

    invalid: ClassVar[str] = "the launch request is not valid"

    override: Override | None = None


class Check(View):
    """One requirement of one law for one channel and locale, and whether it is carried."""

    jurisdiction: str
    version: str = Field(description="the version of the law (id@effective date)")
    channel: Channel
    locale: str
    item: str = Field(description="the notice item, or title / heading for prescribed wording")
    requirement: str
    article: str
    carried: bool


class Checklist(View):
    """What the campaign's templates carry of what its laws require."""

    complete: bool = Field(description="every requirement is carried")
    missing: int
    checks: list[Check]


class Duty(View):
    """One duty of one law and its deadline."""

    jurisdiction: str
    version: str
    duty: Literal["notice", "report"] = Field(
        description="notice: to each person; report: to the authority"
    )
    what: str
    article: str
    applies: bool = Field(description="false below the duty's threshold of people affected")
    due_at: datetime | None = Field(description='null: "without undue delay", no fixed hours')


class PlanDeadline(Duty):
    """One duty of one law: by when, and how long is left (negative: overdue)."""

    seconds_left: float | None


class PlanForecast(View):
    """One channel's work left, the rate it can expect, and when it would finish."""

    channel: Channel
    left: int
    rate: float = Field(description="deliveries a second this campaign can expect")
    sharing: int = Field(description="campaigns sending on the channel, this one included")
    seconds: float | None
    finish_at: datetime | None
    meets_deadline: bool | None
    needed_rate: float | None = Field(
        description="the rate that would meet the deadline, when the forecast misses it"
    )


class Plan(View):
    """The deadline clock and the capacity planner."""

    now: datetime
    deadline: datetime | None = Field(
        description="the earliest applicable deadline of a notice to people"
    )
    finish_at: datetime | None
    meets_deadline: bool | None
    observed_rate: float | None = Field(description="the measured send rate, while sending")
    deadlines: list[PlanDeadline]
    forecasts: list[PlanForecast]


class CampaignList(Page[Campaign]):
    """A page of campaigns, newest first."""


class UploadResult(View):
    """What one upload of recipients did; bad rows are reported by line."""

    accepted: int
    rejected: int
    duplicates: int
    errors: list[LineError] = Field(max_length=1000, description="the first 1000 bad rows")


# A campaign that creation accepts, shown in the document (and used by fuzzers to reach past
# validation): English and Korean templates on both channels.
EXAMPLE: dict[str, Any] = {
    "name": "Account data exposure, November 2026",
    "incident_ref": "INC-2026-1129",
    "channels": ["email", "sms"],
    "default_locale": "ko",
    "default_region": "KR",
    "variables": ["name"],
    "templates": {
        "email": {
            "ko": {
                "subject": "[중요] {{ name }}님 개인정보 노출 안내",
                "text": "{{ name }}님, 확인 코드 {{ verification_code }}: {{ verify_url }}",
            },
            "en": {
                "subject": "Important: notice for {{ name }}",
                "text": "Dear {{ name }}, your code {{ verification_code }}: {{ verify_url }}",
            },
        },
        "sms": {
            "ko": {"text": "[안내] 확인코드 {{ verification_code }}"},
            "en": {"text": "Notice: code {{ verification_code }}"},
        },
    },
}
RECIPIENTS_EXAMPLE = (
    "external_id,email,phone,locale,name\n"
    "acct-1,user1@example.com,+821012345678,ko,Kim\n"
    "acct-2,user2@example.com,010-2345-6789,en,Lee\n"
)
