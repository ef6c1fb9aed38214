"""The sandboxed Jinja environments templates are parsed and rendered in."""

from __future__ import annotations

from collections.abc import Mapping

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

from notifier.errors import NotifierError

MAX_RENDERED_CHARS = 1_000_000


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


TEXT_ENV = _environment(html=False)
HTML_ENV = _environment(html=True)


def environment_for(part: str) -> SandboxedEnvironment:
    """The environment of a template part: HTML escapes its values, the others do not."""
    return HTML_ENV if part == "html" else TEXT_ENV


def literal_text(tree: nodes.Template) -> str:
    """A parsed template's own text, without anything filled in."""
    return "".join(n.data for n in tree.find_all(nodes.TemplateData))


def render(template: Template, context: Mapping[str, str]) -> str:
    """A template filled in with one person's values; every failure is a RenderFailed."""
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
