"""The `notifier` command: migrate, api, worker, sandbox, keys create, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from notifier.errors import NotifierError
from notifier.settings import Settings, SettingsError

log = logging.getLogger("notifier")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _require(settings: Settings, *names: str) -> None:
    missing = [n for n in names if not getattr(settings, n)]
    if missing:
        raise SettingsError("set " + ", ".join(f"NOTIFIER_{n.upper()}" for n in missing))


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # the service also runs on the standard loop
        return
    uvloop.install()


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.db import migrate

    _require(settings, "database_url")
    assert settings.database_url
    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from notifier.app import create_app

    _require(settings, "database_url", "redis_url")
    _install_uvloop()
    web.run_app(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        access_log=None,
        shutdown_timeout=30,
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from arq.worker import Worker

    from workers.settings import worker_settings

    _require(settings, "database_url", "redis_url")
    _install_uvloop()
    Worker(**worker_settings(settings)).run()
    return 0


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.sandbox import serve

    _install_uvloop()
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
            )
        )
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    from notifier import keys

    _require(settings, "database_url")

    async def run() -> keys.NewKey:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await keys.create(
                conn,
                name=args.name,
                scopes=args.scopes.split(","),
                expires_in_days=args.expires_in_days,
            )
        finally:
            await conn.close()

    new = asyncio.run(run())
    print(
        f"key {new.id} '{new.name}' scopes={','.join(new.scopes)} "
        f"expires={new.expires_at:%Y-%m-%dT%H:%M:%SZ}",
        file=sys.stderr,
    )
    print(new.secret)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.demo import run_demo

    _install_uvloop()
    return asyncio.run(
        run_demo(settings, accounts=args.accounts, rate=args.rate, workers=args.workers)
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="notifier", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply sql/ migrations (safe to run twice)").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("api", help="serve the REST API").set_defaults(func=cmd_api)
    sub.add_parser("worker", help="run one dispatch worker").set_defaults(func=cmd_worker)
    sb = sub.add_parser("sandbox", help="local SMTP server and Twilio-compatible API")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--smtp-port", type=int, default=2525)
    sb.add_argument("--http-port", type=int, default=8025)
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
    keys = sub.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True
    )
    kc = keys.add_parser("create", help="create a key and print its secret once")
    kc.add_argument("--name", required=True)
    kc.add_argument("--scopes", default="campaigns:read,campaigns:write,keys:admin")
    kc.add_argument("--expires-in-days", type=int, default=30)
    kc.set_defaults(func=cmd_keys_create)
    demo = sub.add_parser("demo", help="the whole system on this machine, end to end")
    demo.add_argument("--accounts", type=int, default=10_000)
    demo.add_argument(
        "--rate", type=float, default=1000.0, help="messages per second per channel during the demo"
    )
    demo.add_argument("--workers", type=int, default=2, help="worker processes to run")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        _setup_logging(settings)
        return int(args.func(settings, args))
    except SettingsError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return 2
    except NotifierError as exc:
        print(f"notifier: {exc.detail}", file=sys.stderr)
        for problem in exc.errors or []:
            print(f"  {problem.get('field', '')}: {problem.get('message', '')}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
