"""Campaign templates: what a campaign may use, and the exact messages people receive."""

from __future__ import annotations

import copy
import email
import re
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from notifier.templates.checks import validate_templates
from notifier.templates.compiled import CompiledCampaign
from notifier.templates.environment import RenderFailed
from notifier.templates.links import allowed_domain, check_links, linked_domains
from notifier.templates.locales import resolve_locale
from notifier.templates.sms import sms_segments

TEMPLATES: dict[str, Any] = {
    "email": {
        "ko": {
            "subject": "[중요] {{ name }}님 개인정보 노출 안내",
            "text": "{{ name }}님,\n확인 코드: {{ verification_code }}\n{{ verify_url }}\n",
            "html": "<p>{{ name }}님</p><p>확인 코드: <b>{{ verification_code }}</b></p>",
        },
        "en": {
            "subject": "Notice for {{ name }}",
            "text": "Dear {{ name }}, your code is {{ verification_code }}.",
        },
    },
    "sms": {
        "ko": {"text": "[안내] 확인코드 {{ verification_code }}"},
        "en": {"text": "Notice: code {{ verification_code }}"},
    },
}
CONTEXT = {
    "external_id": "acct-1",
    "locale": "ko",
    "name": "홍길동",
    "verification_code": "K7Q2M9",
    "verify_url": "https://notice.example.com/v1/verify/K7Q2M9",
}


def problems(
    templates: Any = None,
    *,
    channels: tuple[str, ...] = ("email", "sms"),
    default_locale: str = "ko",
    variables: tuple[str, ...] = ("name",),
) -> list[str]:
    found = validate_templates(
        TEMPLATES if templates is None else templates,
        channels=channels,
        default_locale=default_locale,
        variables=variables,
    )
    return [f"{p['field']}: {p['message']}" for p in found]


def changed(channel: str, locale: str, **parts: Any) -> dict[str, Any]:
    """TEMPLATES with some parts of one template replaced (None removes a part)."""
    templates = copy.deepcopy(TEMPLATES)
    entry = templates[channel][locale]
    for key, value in parts.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return templates


def campaign(templates: dict[str, Any] | None = None, **options: Any) -> CompiledCampaign:
    options.setdefault("message_id_domain", "mail.example.com")
    return CompiledCampaign(templates or TEMPLATES, email_from="notice@example.com", **options)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def content(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


# validate_templates


def test_a_complete_campaign_has_no_problems() -> None:
    assert problems() == []


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        ("not an object", "templates: must be an object keyed by channel"),
        (
            {"email": [], "sms": TEMPLATES["sms"]},
            "templates.email: must be an object keyed by locale",
        ),
        ({**TEMPLATES, "fax": {}}, "templates.fax: unknown channel; use email or sms"),
        ({"email": TEMPLATES["email"]}, "templates.sms: missing; every channel"),
        (
            {**TEMPLATES, "sms": {"en": TEMPLATES["sms"]["en"]}},
            "templates.sms: no template for the default locale 'ko'",
        ),
        (
            {**TEMPLATES, "sms": {**TEMPLATES["sms"], "korean": {"text": "{{ verify_url }}"}}},
            "templates.sms.korean: locale must be a BCP 47 language tag",
        ),
        (
            {**TEMPLATES, "sms": {**TEMPLATES["sms"], "KO": {"text": "{{ verify_url }}"}}},
            "templates.sms.KO: the same locale as 'ko'",
        ),
        (
            {**TEMPLATES, "sms": {**TEMPLATES["sms"], "ja": "text"}},
            "templates.sms.ja: must be an object with text",
        ),
        (changed("email", "ko", subject=None), "templates.email.ko.subject: required"),
        (changed("email", "en", text=None), "templates.email.en.text: required"),
        (changed("sms", "ko", text=None), "templates.sms.ko.text: required"),
        (changed("sms", "ko", html="<p>x</p>"), "templates.sms.ko.html: unknown part"),
        (changed("email", "ko", subject=3), "templates.email.ko.subject: must be a string"),
        (changed("email", "ko", subject="  "), "templates.email.ko.subject: must not be empty"),
        (
            changed("email", "ko", subject="a\nb"),
            "templates.email.ko.subject: must be a single line",
        ),
        (
            changed("email", "ko", subject="s" * 999),
            "templates.email.ko.subject: longer than 998 characters",
        ),
        (
            changed("email", "en", text="{{ verification_code }}" + "x" * 102_400),
            "templates.email.en.text: larger than 100 KB",
        ),
        (
            changed("sms", "en", text="{{ verification_code }}" + "x" * 1600),
            "templates.sms.en.text: longer than 1600 characters",
        ),
        (
            changed("sms", "en", text="code {{ verification_code }"),
            "templates.sms.en.text: line 1: unexpected '}'",
        ),
        (
            changed("email", "en", text="{% if name %}\n{{ verification_code }}"),
            "templates.email.en.text: line 2: Unexpected end of template",
        ),
        (
            changed("sms", "en", text="{{ nickname }} {{ verification_code }}"),
            "templates.sms.en.text: unknown variable 'nickname'; declare it in \"variables\"",
        ),
        (
            changed("sms", "en", text="Notice for {{ name }}"),
            "templates.sms.en.text: the text must include {{ verification_code }} or "
            "{{ verify_url }}",
        ),
        (
            changed("email", "en", subject="{{ verification_code }}", text="Dear {{ name }}"),
            "templates.email.en.text: the text or html must include {{ verification_code }}",
        ),
        (
            changed("sms", "en", text="{% for i in range(9) %}{{ verification_code }}{% endfor %}"),
            "templates.sms.en.text: line 1: {% for %} loops not allowed",
        ),
        (
            changed("sms", "en", text="{{ verification_code.__class__ }}"),
            "templates.sms.en.text: line 1: attribute access not allowed",
        ),
        (
            changed("sms", "en", text="{{ verification_code * 100000 }}"),
            "templates.sms.en.text: line 1: Mul not allowed",
        ),
        (
            changed("sms", "en", text="{% set x = name ~ name %}{{ verification_code }}"),
            "templates.sms.en.text: line 1: {% set %} not allowed",
        ),
        (
            changed("sms", "en", text="{% include 'x' %}{{ verification_code }}"),
            "templates.sms.en.text: line 1: {% include %} not allowed",
        ),
        (
            changed("email", "ko", html="<p>{{ name|safe }} {{ verification_code }}</p>"),
            "templates.email.ko.html: line 1: filter 'safe' not allowed",
        ),
        (
            changed("sms", "en", text="{{ lipsum() }} {{ verification_code }}"),
            "templates.sms.en.text: line 1: function calls not allowed",
        ),
    ],
)
def test_each_problem_is_reported_at_its_field(templates: Any, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(templates)), problems(templates)


def test_the_code_may_be_in_the_html_part_alone() -> None:
    templates = changed("email", "ko", text="{{ name }}님", html="<p>{{ verify_url }}</p>")
    assert problems(templates) == []


def test_allowed_constructs_pass() -> None:
    text = (
        '{% if locale == "ko" and name is defined %}{{ name|trim|upper }}{% else %}'
        '{{ external_id|default("customer") }}{% endif %} {{ verification_code ~ "!" }}'
    )
    assert problems(changed("sms", "en", text=text)) == []


def test_channels_and_variables_are_checked_too() -> None:
    found = problems(channels=("email", "sms", "fax"), variables=("name", "email", "2x", "locale"))
    assert "channels: unknown channel 'fax'" in found
    assert "variables[1]: 'email' is a contact column, not a template variable" in found
    assert any(p.startswith("variables[2]: must be letters") for p in found)
    assert "variables[3]: 'locale' is supplied by the service" in found
    assert problems(default_locale="Korean") == [
        "default_locale: must be a BCP 47 language tag such as 'ko', 'en', 'ko-KR' or 'zh-Hant-TW'",
        "templates.email: no template for the default locale 'Korean'",
        "templates.sms: no template for the default locale 'Korean'",
    ]


# resolve_locale


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, "ko"),
        ("", "ko"),
        ("  ", "ko"),
        ("en", "en"),
        ("EN", "en"),
        ("ko-KR", "ko"),
        ("ko_KR", "ko"),
        ("zh-Hant-TW", "zh-Hant"),
        ("ZH-HANT", "zh-Hant"),
        ("zh-Hans-CN", None),
        ("fr", None),
        ("k", None),
    ],
)
def test_locales_resolve_exactly_then_by_shorter_tags(
    requested: str | None, expected: str | None
) -> None:
    assert resolve_locale(requested, {"ko", "en", "zh-Hant"}, "ko") == expected


# render_email


def test_a_value_with_line_breaks_cannot_add_a_header() -> None:
    evil = "x\r\nBcc: evil@example.net\r\nX-Injected: 1"
    templates = changed("email", "en", subject="Notice for {{ name }}")
    raw = campaign(templates).render_email(
        "en", "person@example.com\r\nCc: evil@example.net", {**CONTEXT, "name": evil}
    )
    message = parse(raw)
    assert set(message.keys()) == {
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    }
    assert message["Bcc"] is None and message["Cc"] is None and message["X-Injected"] is None
    assert message["Subject"] == "Notice for x Bcc: evil@example.net X-Injected: 1"
    assert message["To"].addresses[0].addr_spec == "person@example.com"
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0]
    # The body keeps the text as written: there a line break is only text.
    assert "x\nBcc: evil@example.net" in content(message, "plain")


def test_korean_text_round_trips_through_every_part() -> None:
    compiled = campaign(from_name="고객센터 (Customer Care)")
    raw = compiled.render_email("ko", "person@example.com", CONTEXT)
    message = parse(raw)
    assert message["Subject"] == "[중요] 홍길동님 개인정보 노출 안내"
    assert message["From"].addresses[0].display_name == "고객센터 (Customer Care)"
    assert message["From"].addresses[0].addr_spec == "notice@example.com"
    assert message.get_content_type() == "multipart/alternative"
    assert content(message, "plain") == (
        "홍길동님,\n확인 코드: K7Q2M9\nhttps://notice.example.com/v1/verify/K7Q2M9\n"
    )
    assert content(message, "html") == "<p>홍길동님</p><p>확인 코드: <b>K7Q2M9</b></p>"
    assert not message.defects
    for part in message.walk():
        assert not part.defects


def test_html_escapes_values_and_text_keeps_them() -> None:
    raw = campaign().render_email("ko", "p@example.com", {**CONTEXT, "name": "<b>A&B</b>"})
    message = parse(raw)
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;님" in content(message, "html")
    assert content(message, "plain").startswith("<b>A&B</b>님,")


def test_a_text_only_message_is_plain_text_with_the_usual_headers() -> None:
    raw = campaign().render_email("en", "p@example.com", {**CONTEXT, "name": "Jane"})
    message = parse(raw)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content() == "Dear Jane, your code is K7Q2M9."
    assert re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.com>", message["Message-ID"])
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    other = parse(campaign().render_email("en", "p@example.com", CONTEXT))
    assert other["Message-ID"] != message["Message-ID"]


@pytest.mark.parametrize(
    "name",
    [
        "Jane " * 40,
        "김" * 120,
        "x" * 1200,
        "Jane =?utf-8?q?x?= Doe",
        "mixed 한글 and English " * 8,
    ],
)
def test_long_subjects_and_bodies_fold_within_line_limits(name: str) -> None:
    text = ("A line that is long enough to need wrapping, " * 10 + "{{ name }}\n") * 3
    templates = changed(
        "email", "en", text=text + "{{ verification_code }}", html="<p>{{ name }}</p>" * 20
    )
    raw = campaign(templates).render_email("en", "p@example.com", {**CONTEXT, "name": name})
    head, body = raw.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    message = parse(raw)
    assert message["Subject"] == "Notice for " + " ".join(name.split())
    assert content(message, "plain") == text.replace("{{ name }}", name) + "K7Q2M9"
    assert content(message, "html") == f"<p>{name}</p>" * 20


def test_a_static_subject_renders_like_a_dynamic_one() -> None:
    static = parse(
        campaign(changed("email", "en", subject="안내 Notice")).render_email(
            "en", "p@example.com", CONTEXT
        )
    )
    assert static["Subject"] == "안내 Notice"


def test_rendering_failures_and_bad_settings_are_reported() -> None:
    compiled = campaign()
    with pytest.raises(RenderFailed, match="'name' is undefined"):
        compiled.render_email("en", "p@example.com", {"verification_code": "K7Q2M9"})
    with pytest.raises(KeyError):
        compiled.render_sms("fr", CONTEXT)
    with pytest.raises(ValueError):
        campaign(message_id_domain="example.com>\r\nBcc: x")
    for sender in ("a@example.com\r\nBcc: x@example.com", "<a@example.com>", "", "a b@x.com"):
        with pytest.raises(ValueError):
            CompiledCampaign(TEMPLATES, email_from=sender, message_id_domain="example.com")
    bad_filter = changed("sms", "en", text="{{ name|truncate('x') }} {{ verification_code }}")
    assert problems(bad_filter) == []
    with pytest.raises(RenderFailed, match="TypeError"):
        campaign(bad_filter).render_sms("en", CONTEXT)


# render_sms and sms_segments


def test_sms_text_keeps_line_feeds_and_drops_other_controls() -> None:
    templates = changed("sms", "en", text="Hi {{ name }}\r\ncode {{ verification_code }}")
    body = campaign(templates).render_sms("en", {**CONTEXT, "name": "A\x00B\x1b\tC"})
    assert body == "Hi ABC\ncode K7Q2M9"
    assert campaign().render_sms("ko", CONTEXT) == "[안내] 확인코드 K7Q2M9"


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 151, 2),
        ("a" * 152 + "€" + "a" * 152, 3),
        ("é@£$¥èùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà" * 3, 1),
        ("é@£$¥èùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà" * 4, 2),
        ("가" * 70, 1),
        ("가" * 71, 2),
        ("가" * 134, 2),
        ("가" * 135, 3),
        ("a" * 159 + "ç", 3),
        ("\U0001f600" * 35, 1),
        ("\U0001f600" * 36, 2),
        ("가" * 65 + "\U0001f600" + "가" * 67, 2),
        ("가" * 66 + "\U0001f600" + "가" * 65, 2),
        ("가" * 66 + "\U0001f600" + "가" * 66, 3),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2_rules(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Visit https://www.Example.com/help now", ["www.example.com"]),
        ("write to security@lookalike-help.com", ["lookalike-help.com"]),
        ("a.b-c.co.kr/path?x=1 and xn--3e0b707e.kr", ["a.b-c.co.kr", "xn--3e0b707e.kr"]),
        ("쿠팡.한국/확인", ["쿠팡.한국"]),
        ("e.g. version 2.0, J.R. Smith", []),
        ("유출되었습니다.확인코드를 보세요", []),
    ],
)
def test_domains_named_in_text_are_found(text: str, found: list[str]) -> None:
    assert linked_domains(text) == found


def test_templates_may_only_name_allowed_domains() -> None:
    templates = {
        "email": {
            "en": {
                "subject": "Notice from example.com",
                "text": "Check {{ verify_url }} or https://help.example.com/faq",
                "html": '<a href="https://examp1e.com/login">Log in</a>',
            }
        },
        "sms": {"en": {"text": "See bit.ly/x {{ verification_code }}"}},
    }
    problems = check_links(templates, {"example.com"})
    assert [(p["field"], p["message"].split(",")[0]) for p in problems] == [
        ("templates.email.en.html", "names examp1e.com"),
        ("templates.sms.en.text", "names bit.ly"),
    ]
    assert allowed_domain("help.example.com", {"example.com"})
    assert not allowed_domain("notexample.com", {"example.com"})
