"""Which of a campaign's template locales serves a recipient's language tag."""

from __future__ import annotations

from collections.abc import Collection


def resolve_locale(requested: str | None, available: Collection[str], default: str) -> str | None:
    """The template locale for a requested tag: exact match ignoring case, then ever shorter
    prefixes (``ko-KR`` → ``ko``); empty means ``default``. None when nothing matches."""
    wanted = (requested or "").strip() or default
    return lookup(wanted, available)


def lookup(tag: str, available: Collection[str]) -> str | None:
    """The locale of `available` that serves `tag`, or None."""
    by_lower = {key.lower(): key for key in available}
    wanted = tag.replace("_", "-").lower()
    while wanted:
        found = by_lower.get(wanted)
        if found is not None:
            return found
        wanted = wanted.rpartition("-")[0]
    return None
