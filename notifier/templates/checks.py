"""What a campaign's templates may contain: parts per channel, locales, declared variables,
and only the template features a notice needs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from notifier.law import FACTS
from notifier.models import LOCALE_HINT, LOCALE_TAG
from notifier.templates.environment import TEXT_ENV, environment_for
from notifier.templates.locales import lookup

# What the service gives every notice: the account, or every account sharing its contact
# (`accounts`, comma-separated), the code and the page that checks it, the published notice.
BUILTIN_VARIABLES = frozenset(
    {"external_id", "accounts", "locale", "verification_code", "verify_url", "notice_url"}
)
# The notice's items: the campaign's facts per locale, and the date the notice is sent.
NOTICE_VARIABLES = FACTS | {"notice_date"}
# Notices never repeat an address or number back: a phisher's copy could not either.
CONTACT_COLUMNS = frozenset({"email", "phone"})
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
MAX_BODY_BYTES = 100 * 1024
MAX_SMS_CHARS = 1600  # Twilio's limit for one message body

_CODE_VARIABLES = frozenset({"verification_code", "verify_url"})
_PARTS = {"email": ("subject", "text", "html"), "sms": ("text",)}
_REQUIRED = {"email": ("subject", "text"), "sms": ("text",)}
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

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
            and lookup(default_locale, [k for k in by_locale if isinstance(k, str)]) is None
        ):
            problems.append(
                {
                    "field": f"templates.{channel}",
                    "message": f"no template for the default locale '{default_locale}'",
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
        elif name in NOTICE_VARIABLES:
            problems.append(
                {"field": field, "message": f"'{name}' is an item of the notice, given in facts"}
            )
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
    try:
        tree = environment_for(key).parse(source)
    except TemplateSyntaxError as exc:
        problem(f"line {exc.lineno}: {exc.message or 'syntax error'}")
        return None
    unsupported = _unsupported(tree)
    if unsupported:
        problem(unsupported)
        return None
    names = {n.name for n in tree.find_all(nodes.Name)}
    unknown = sorted(names - BUILTIN_VARIABLES - NOTICE_VARIABLES - declared)
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
        if isinstance(node, nodes.Test) and node.name not in TEXT_ENV.tests:
            return f"line {node.lineno}: unknown test '{node.name}'"
    return None


def variables_used(templates: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[str, set[str]]:
    """Locale -> the variables its templates use, on every channel (templates already
    checked: every part parses)."""
    used: dict[str, set[str]] = {}
    for (_, locale), names in template_variables(templates).items():
        used.setdefault(locale, set()).update(names)
    return used


def template_variables(
    templates: Mapping[str, Mapping[str, Mapping[str, str]]],
) -> dict[tuple[str, str], set[str]]:
    """(channel, locale) -> the variables that template uses, in any of its parts."""
    used: dict[tuple[str, str], set[str]] = {}
    for channel, by_locale in templates.items():
        for locale, parts in by_locale.items():
            names = used.setdefault((channel, locale), set())
            for key, source in parts.items():
                if source:
                    tree = environment_for(key).parse(source)
                    names.update(n.name for n in tree.find_all(nodes.Name))
    return used
