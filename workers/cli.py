"""`notifier worker`: one dispatch worker process (the `notifier.commands` entry point)."""

from __future__ import annotations

import argparse

from notifier.commands import Subcommands, install_uvloop, require
from notifier.settings import Settings


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from arq.worker import Worker

    from notifier.sealing import Sealer
    from workers.settings import worker_settings

    require(settings, "database_url", "redis_url")
    Sealer.from_settings(settings)  # refuse to start without the keys, naming them
    install_uvloop()
    Worker(**worker_settings(settings)).run()
    return 0


def register(sub: Subcommands) -> None:
    """Add `notifier worker`."""
    sub.add_parser("worker", help="run one dispatch worker").set_defaults(func=cmd_worker)
