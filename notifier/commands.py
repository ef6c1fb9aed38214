"""What the parts of the `notifier` command share, in whichever package they live.

Commands outside the product (the worker, the development tools) join the command through
the `notifier.commands` entry-point group, so the product never imports their packages.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from notifier.settings import Settings, SettingsError

ENTRY_POINT_GROUP = "notifier.commands"

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
# An entry point of the group: adds its subcommand, whose `func` default runs it.
Register: TypeAlias = Callable[[Subcommands], None]


def require(settings: Settings, *names: str) -> None:
    """Refuse to run without these settings, naming their variables."""
    missing = [n for n in names if not getattr(settings, n)]
    if missing:
        raise SettingsError("set " + ", ".join(f"NOTIFIER_{n.upper()}" for n in missing))


def install_uvloop() -> None:
    """Use uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # the service also runs on the standard loop
        return
    uvloop.install()
