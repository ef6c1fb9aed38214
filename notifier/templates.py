"""Campaign templates: checked when a campaign is created, compiled once, rendered per person.

Templates are Jinja, sandboxed, and further limited to what a notice needs (variables,
``{% if %}`` and a few filters that never grow their input), so no campaign can make a worker
loop or build huge strings. Email is assembled straight into wire bytes from parts computed
once per campaign; only the values that differ per person are encoded per message.
"""

from __future__ import annotations

import binascii
import re
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from notifier import messageid
from notifier.errors import NotifierError
from notifier.models import LOCALE_HINT, LOCALE_TAG

BUILTIN_VARIABLES = frozenset({"external_id", "locale", "verification_code", "verify_url"})
# Notices never repeat an address or number back: a phisher's copy could not either.
CONTACT_COLUMNS = frozenset({"email", "phone"})
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
MAX_BODY_BYTES = 100 * 1024
MAX_SMS_CHARS = 1600  # Twilio's limit for one message body
MAX_RENDERED_CHARS = 1_000_000

_CODE_VARIABLES = frozenset({"verification_code", "verify_url"})
_PARTS = {"email": ("subject", "text", "html"), "sms": ("text",)}
_REQUIRED = {"email": ("subject", "text"), "sms": ("text",)}
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# C0 and C1 controls and Unicode line breaks: none may reach a header.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SMS_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]+")

# Nodes a notice needs; loops, calls, assignments, macros and arithmetic are left out so
# that rendering time and output size stay proportional to the template and the values.
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.List,
    nodes.Tuple,
)
# Filters that never make their input much longer; "safe" is absent on purpose, so a value
# can never switch off HTML escaping.
_ALLOWED_FILTERS = frozenset(
    {
        "capitalize",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "last",
        "length",
        "lower",
        "string",
        "title",
        "trim",
        "truncate",
        "upper",
        "wordcount",
    }
)
_NODE_NAMES = {
    "For": "{% for %} loops",
    "Call": "function calls",
    "Assign": "{% set %}",
    "AssignBlock": "{% set %}",
    "Macro": "macros",
    "Include": "{% include %}",
    "Import": "{% import %}",
    "FromImport": "{% import %}",
    "Extends": "{% extends %}",
    "Getattr": "attribute access",
    "Getitem": "item access",
}


class RenderFailed(NotifierError):
    """A template could not be rendered for this recipient."""

    status = 422
    title = "Template could not be rendered"
    type_slug = "render-failed"


def _environment(*, html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=html,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )


_TEXT_ENV = _environment(html=False)
_HTML_ENV = _environment(html=True)


def validate_templates(
    templates: object, *, channels: Sequence[str], default_locale: str, variables: Sequence[str]
) -> list[dict[str, str]]:
    """Every problem with a campaign's templates as ``{"field", "message"}``; empty when fine."""
    problems: list[dict[str, str]] = []
    declared = _check_variables(variables, problems)
    if not LOCALE_TAG.fullmatch(default_locale):
        problems.append({"field": "default_locale", "message": LOCALE_HINT})
    if not isinstance(templates, Mapping):
        problems.append({"field": "templates", "message": "must be an object keyed by channel"})
        return problems
    for channel, by_locale in templates.items():
        field = f"templates.{channel}"
        if channel not in _PARTS:
            problems.append({"field": field, "message": "unknown channel; use email or sms"})
        elif not isinstance(by_locale, Mapping):
            problems.append({"field": field, "message": "must be an object keyed by locale"})
        else:
            _check_locales(str(channel), by_locale, declared, problems)
    for channel in channels:
        by_locale = templates.get(channel)
        if channel not in _PARTS:
            problems.append({"field": "channels", "message": f"unknown channel '{channel}'"})
        elif by_locale is None:
            problems.append(
                {
                    "field": f"templates.{channel}",
                    "message": "missing; every channel of the campaign needs templates",
                }
            )
        elif (
            isinstance(by_locale, Mapping)
            and _lookup(default_locale, [k for k in by_locale if isinstance(k, str)]) is None
        ):
            problems.append(
                {
                    "field": f"templates.{channel}",
                    "message": f"no template for the default locale '{default_locale}'",
                }
            )
    return problems


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


def check_sms_budget(templates: Mapping[str, Any], budget: int) -> list[dict[str, str]]:
    """Problems for SMS templates whose own text, before any value is filled in, already
    takes more segments than the campaign allows."""
    problems: list[dict[str, str]] = []
    for locale, parts in templates.get("sms", {}).items():
        tree = _TEXT_ENV.parse(parts["text"])
        literal = "".join(n.data for n in tree.find_all(nodes.TemplateData))
        used = sms_segments(literal)
        if used > budget:
            problems.append(
                {
                    "field": f"templates.sms.{locale}.text",
                    "message": f"takes {used} SMS segments before any value is filled in; "
                    f"the campaign allows {budget} (sms_max_segments)",
                }
            )
    return problems


def check_links(templates: Mapping[str, Any], allowed: Collection[str]) -> list[dict[str, str]]:
    """Problems for template text that names a domain outside the allow-list. Only the
    template's own text is read; {{ verify_url }} is the service's own address."""
    problems: list[dict[str, str]] = []
    for channel, by_locale in templates.items():
        for locale, parts in by_locale.items():
            for key, source in parts.items():
                env = _HTML_ENV if key == "html" else _TEXT_ENV
                tree = env.parse(source)
                literal = "".join(n.data for n in tree.find_all(nodes.TemplateData))
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


def _check_variables(variables: Sequence[str], problems: list[dict[str, str]]) -> set[str]:
    declared: set[str] = set()
    for i, name in enumerate(variables):
        field = f"variables[{i}]"
        if not isinstance(name, str) or not _VARIABLE.fullmatch(name):
            problems.append(
                {
                    "field": field,
                    "message": "must be letters, digits and underscores, "
                    "not starting with a digit, at most 64 characters",
                }
            )
        elif name in BUILTIN_VARIABLES:
            problems.append({"field": field, "message": f"'{name}' is supplied by the service"})
        elif name in CONTACT_COLUMNS:
            problems.append(
                {
                    "field": field,
                    "message": f"'{name}' is a contact column, not a template variable",
                }
            )
        else:
            declared.add(name)
    return declared


def _check_locales(
    channel: str, by_locale: Mapping[Any, Any], declared: set[str], problems: list[dict[str, str]]
) -> None:
    seen: dict[str, str] = {}
    for locale, parts in by_locale.items():
        field = f"templates.{channel}.{locale}"
        if not isinstance(locale, str) or not LOCALE_TAG.fullmatch(locale):
            problems.append({"field": field, "message": "locale " + LOCALE_HINT})
        elif locale.lower() in seen:
            problems.append(
                {
                    "field": field,
                    "message": f"the same locale as "
                    f"'{seen[locale.lower()]}' (tags are case-insensitive)",
                }
            )
        elif not isinstance(parts, Mapping):
            problems.append(
                {"field": field, "message": "must be an object with " + ", ".join(_PARTS[channel])}
            )
        else:
            seen[locale.lower()] = locale
            _check_parts(channel, field, parts, declared, problems)


def _check_parts(
    channel: str,
    field: str,
    parts: Mapping[Any, Any],
    declared: set[str],
    problems: list[dict[str, str]],
) -> None:
    for key in parts:
        if key not in _PARTS[channel]:
            problems.append(
                {
                    "field": f"{field}.{key}",
                    "message": "unknown part; expected " + ", ".join(_PARTS[channel]),
                }
            )
    for key in _REQUIRED[channel]:
        if key not in parts:
            problems.append({"field": f"{field}.{key}", "message": "required"})
    body_names: set[str] = set()
    bodies_ok = True
    for key in _PARTS[channel]:
        if key not in parts:
            continue
        names = _check_source(channel, key, f"{field}.{key}", parts[key], declared, problems)
        if key != "subject":
            bodies_ok = bodies_ok and names is not None
            body_names |= names or set()
    if bodies_ok and "text" in parts and not body_names & _CODE_VARIABLES:
        where = "text" if channel == "sms" else "text or html"
        problems.append(
            {
                "field": f"{field}.text",
                "message": f"the {where} must include "
                "{{ verification_code }} or {{ verify_url }} so that people can check "
                "the notice is genuine",
            }
        )


def _check_source(
    channel: str,
    key: str,
    field: str,
    source: object,
    declared: set[str],
    problems: list[dict[str, str]],
) -> set[str] | None:
    """The variable names a part uses, or None when it has a problem of its own."""

    def problem(message: str) -> None:
        problems.append({"field": field, "message": message})

    if not isinstance(source, str):
        problem("must be a string")
        return None
    if not source.strip():
        problem("must not be empty")
        return None
    if key == "subject" and len(source) > MAX_SUBJECT_CHARS:
        problem(f"longer than {MAX_SUBJECT_CHARS} characters")
        return None
    if key == "subject" and ("\r" in source or "\n" in source):
        problem("must be a single line")
        return None
    if channel == "sms" and len(source) > MAX_SMS_CHARS:
        problem(f"longer than {MAX_SMS_CHARS} characters")
        return None
    if len(source.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        problem(f"larger than {MAX_BODY_BYTES // 1024} KB")
        return None
    env = _HTML_ENV if key == "html" else _TEXT_ENV
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        problem(f"line {exc.lineno}: {exc.message or 'syntax error'}")
        return None
    unsupported = _unsupported(tree)
    if unsupported:
        problem(unsupported)
        return None
    names = {n.name for n in tree.find_all(nodes.Name)}
    unknown = sorted(names - BUILTIN_VARIABLES - declared)
    for name in unknown:
        problem(f"unknown variable '{name}'; declare it in \"variables\"")
    return None if unknown else names


def _unsupported(tree: nodes.Template) -> str | None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            kind = type(node).__name__
            what = _NODE_NAMES.get(kind, kind)
            return (
                f"line {node.lineno}: {what} not allowed; templates may use "
                "{{ variables }}, {% if %} and simple filters"
            )
        if isinstance(node, nodes.Filter) and node.name not in _ALLOWED_FILTERS:
            return f"line {node.lineno}: filter '{node.name}' not allowed; use one of " + ", ".join(
                sorted(_ALLOWED_FILTERS)
            )
        if isinstance(node, nodes.Test) and node.name not in _TEXT_ENV.tests:
            return f"line {node.lineno}: unknown test '{node.name}'"
    return None


def resolve_locale(requested: str | None, available: Collection[str], default: str) -> str | None:
    """The template locale for a requested tag: exact match ignoring case, then ever shorter
    prefixes (``ko-KR`` → ``ko``); empty means ``default``. None when nothing matches."""
    wanted = (requested or "").strip() or default
    return _lookup(wanted, available)


def _lookup(tag: str, available: Collection[str]) -> str | None:
    by_lower = {key.lower(): key for key in available}
    wanted = tag.replace("_", "-").lower()
    while wanted:
        found = by_lower.get(wanted)
        if found is not None:
            return found
        wanted = wanted.rpartition("-")[0]
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class _EmailParts:
    subject: Template
    static_subject: bytes | None  # the encoded header, when the subject uses no variables
    text: Template
    html: Template | None


class CompiledCampaign:
    """One campaign's templates, compiled once; renders a person's email and SMS."""

    __slots__ = (
        "_alternative",
        "_close",
        "_date",
        "_date_at",
        "_email",
        "_from",
        "_message_id_tail",
        "_separator",
        "_sms",
    )

    def __init__(
        self,
        templates: Mapping[str, Any],
        *,
        email_from: str,
        from_name: str | None = None,
        message_id_domain: str,
    ) -> None:
        if not _HOSTNAME.fullmatch(message_id_domain):
            raise ValueError("message_id_domain must be a host name")
        self._email: dict[str, _EmailParts] = {}
        for locale, parts in templates.get("email", {}).items():
            subject = _TEXT_ENV.from_string(parts["subject"])
            static = not any(_TEXT_ENV.parse(parts["subject"]).find_all(nodes.Name))
            self._email[locale] = _EmailParts(
                subject=subject,
                static_subject=_subject_header(_render(subject, {})) if static else None,
                text=_TEXT_ENV.from_string(parts["text"]),
                html=_HTML_ENV.from_string(parts["html"]) if parts.get("html") else None,
            )
        self._sms = {
            locale: _TEXT_ENV.from_string(parts["text"])
            for locale, parts in templates.get("sms", {}).items()
        }
        self._from = _from_header(email_from, from_name)
        self._message_id_tail = f"@{message_id_domain}>\r\n".encode("ascii")
        # "=_" can never occur in base64 or quoted-printable text, so one boundary per
        # campaign is safe for every message.
        boundary = f"=_{uuid.uuid4().hex}".encode("ascii")
        self._alternative = (
            b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
            b' boundary="' + boundary + b'"\r\n\r\n'
        )
        self._separator = b"--" + boundary + b"\r\n"
        self._close = b"--" + boundary + b"--\r\n"
        self._date_at = -1
        self._date = b""

    def render_email(
        self, locale: str, to: str, context: Mapping[str, str], *, ref: str = ""
    ) -> bytes:
        """A complete RFC 5322 message for one person, ready for SMTP DATA. `ref` leads the
        Message-ID (the delivery it belongs to), so that the relay's events can name it."""
        parts = self._email[locale]
        subject = parts.static_subject or _subject_header(_render(parts.subject, context))
        text = _body(_render(parts.text, context), b"plain")
        now = int(time.time())
        if now != self._date_at:
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
            self._date_at = now
        head = [
            self._from,
            b"To: ",
            _one_line(to).encode("utf-8"),
            b"\r\n",
            subject,
            self._date,
            b"Message-ID: <",
            messageid.local_part(ref),
            self._message_id_tail,
        ]
        if parts.html is None:
            return b"".join((*head, b"MIME-Version: 1.0\r\n", text))
        html = _body(_render(parts.html, context), b"html")
        return b"".join(
            (
                *head,
                self._alternative,
                self._separator,
                text,
                b"\r\n",
                self._separator,
                html,
                b"\r\n",
                self._close,
            )
        )

    def render_sms(self, locale: str, context: Mapping[str, str]) -> str:
        """The SMS text for one person: line feeds kept, other control characters dropped."""
        text = _render(self._sms[locale], context)
        return _SMS_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _render(template: Template, context: Mapping[str, str]) -> str:
    # A shared context reads the values as given, skipping the merge with Jinja's globals
    # (which templates cannot call anyway): the bulk of Template.render's cost.
    values = context if isinstance(context, dict) else dict(context)
    try:
        out = "".join(template.root_render_func(template.new_context(values, shared=True)))
    except TemplateError as exc:
        raise RenderFailed(f"template could not be rendered: {exc.message}") from None
    except Exception as exc:  # a filter given a value it cannot take; the text may hold data
        raise RenderFailed(f"template could not be rendered: {type(exc).__name__}") from None
    if len(out) > MAX_RENDERED_CHARS:
        raise RenderFailed(f"rendered text longer than {MAX_RENDERED_CHARS} characters")
    return out


def _one_line(value: str) -> str:
    """A value safe inside a header: controls and line breaks become single spaces."""
    return " ".join(_CONTROLS.sub(" ", value).split())


def _from_header(address: str, name: str | None) -> bytes:
    message = EmailMessage(policy=SMTP)
    try:
        if _CONTROLS.search(address) or "@" not in address:
            raise ValueError(address)
        message["From"] = Address(display_name=_one_line(name or ""), addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        raise ValueError("email_from must be a plain address such as notice@example.com") from None
    return SMTP.fold_binary("From", message["From"])


def _subject_header(subject: str) -> bytes:
    text = _one_line(subject)
    if text.isascii() and "=?" not in text:
        lines, line = [], "Subject:"
        for word in text.split(" "):
            if len(line) + 1 + len(word) > 78 and line != "Subject:":
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        if max(map(len, lines)) <= 78:
            return ("\r\n".join(lines) + "\r\n").encode("ascii")
    # RFC 2047 encoded words of at most 42 bytes each (68 characters encoded), cut only
    # between characters, so every header line stays under 78 characters.
    data = text.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + 42, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        words.append(b"=?utf-8?b?" + binascii.b2a_base64(data[start:end], newline=False) + b"?=")
        start = end
    return b"Subject: " + b"\r\n ".join(words) + b"\r\n"


def _body(text: str, subtype: bytes) -> bytes:
    """A MIME part's headers and body: quoted-printable for ASCII text, base64 otherwise."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    head = b"Content-Type: text/" + subtype + b'; charset="utf-8"\r\n'
    if data.isascii():
        # b2a_qp breaks soft lines with the first line ending it meets, "\n" when none.
        encoded = binascii.b2a_qp(data, istext=True)
        if b"\r\n" not in encoded:
            encoded = encoded.replace(b"\n", b"\r\n")
        if not encoded.endswith(b"\r\n"):
            encoded += b"=\r\n"  # a soft break: the message ends in CRLF, the text does not
        return head + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded
    flat = binascii.b2a_base64(data, newline=False)
    lines = [flat[i : i + 76] for i in range(0, len(flat), 76)]
    return head + b"Content-Transfer-Encoding: base64\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"


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
