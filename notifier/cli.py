"""The `notifier` command: migrate, api, keys, audit, ledger, plan, regulator-report, purge,
seal, and the commands other packages add (worker, sandbox, demo)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from notifier.commands import ENTRY_POINT_GROUP, Register, Subcommands, install_uvloop, require
from notifier.errors import NotifierError
from notifier.models import Scope
from notifier.settings import Settings, SettingsError

log = logging.getLogger("notifier")
T = TypeVar("T")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.db import migrate

    require(settings, "database_url")
    assert settings.database_url
    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.app import create_app
    from notifier.serve import serve

    require(settings, "database_url", "redis_url")
    install_uvloop()
    asyncio.run(
        serve(
            create_app(settings),
            settings.api_host,
            settings.api_port,
            drain_seconds=settings.api_drain_seconds,
        )
    )
    return 0


def _with_db(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(connection)` against NOTIFIER_DATABASE_URL."""
    import asyncpg

    require(settings, "database_url")

    async def run() -> T:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _print_new_key(new: Any) -> None:
    print(
        f"key {new.id} '{new.name}' scopes={','.join(new.scopes)} "
        f"expires={new.expires_at:%Y-%m-%dT%H:%M:%SZ}",
        file=sys.stderr,
    )
    print(new.secret)


def _key_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise SettingsError(f"{raw!r} is not a key id") from None


async def _audited(conn: Any, action: str, target: uuid.UUID, work: Awaitable[T]) -> T:
    """Run a key change and record it; the CLI acts with no API key, from 'cli'."""
    from notifier import audit

    result = await work
    await audit.record(
        conn, key_id=None, action=f"cli keys {action}", target=str(target), status=0, client="cli"
    )
    return result


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import keys

    async def work(conn: Any) -> keys.NewKey:
        new = await keys.create(
            conn,
            name=args.name,
            scopes=args.scopes.split(","),
            expires_in_days=args.expires_in_days,
        )
        return await _audited(conn, "create", new.id, asyncio.sleep(0, new))

    _print_new_key(_with_db(settings, work))
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import keys

    items, _ = _with_db(settings, lambda conn: keys.list_page(conn, after=None, limit=1000))
    print(f"{'id':36}  {'name':20}  {'expires':20}  {'last used':20}  state  scopes")
    for k in items:
        state = "revoked" if k["revoked_at"] else "active"
        used = f"{k['last_used_at']:%Y-%m-%dT%H:%M:%SZ}" if k["last_used_at"] else "never"
        print(
            f"{k['id']!s:36}  {k['name'][:20]:20}  {k['expires_at']:%Y-%m-%dT%H:%M:%SZ}  "
            f"{used:20}  {state:7}{','.join(k['scopes'])}"
        )
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import keys

    key_id = _key_id(args.id)
    _with_db(settings, lambda conn: _audited(conn, "revoke", key_id, keys.revoke(conn, key_id)))
    print(f"key {key_id} revoked", file=sys.stderr)
    return 0


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import keys

    key_id = _key_id(args.id)
    _print_new_key(
        _with_db(
            settings,
            lambda conn: _audited(
                conn,
                "rotate",
                key_id,
                keys.rotate(conn, key_id, expires_in_days=args.expires_in_days),
            ),
        )
    )
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import audit

    items, _ = _with_db(settings, lambda conn: audit.list_page(conn, after=None, limit=args.limit))
    for e in items:
        print(
            f"{e['at']:%Y-%m-%dT%H:%M:%SZ}  {e['status']}  {e['action']:45}  "
            f"target={e['target'] or '-'}  key={e['api_key_id'] or '-'}  "
            f"client={e['client'] or '-'}"
        )
    return 0


def cmd_ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import ledger

    campaign_id = _campaign_id(args.campaign)
    verdict = _with_db(settings, lambda conn: ledger.verify(conn, campaign_id))
    print(verdict.describe())
    return 0 if verdict.ok else 1


def _campaign_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise SettingsError(f"{raw!r} is not a campaign id") from None


def cmd_plan(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import campaigns, plan

    campaign_id = _campaign_id(args.campaign)

    async def work(conn: Any) -> plan.Plan:
        return await plan.plan(conn, await campaigns.get(conn, campaign_id), settings)

    found = _with_db(settings, work)
    for line in plan.describe(found):
        print(line)
    return 0 if found.meets_deadline is not False else 1


def cmd_regulator_report(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import regulator

    campaign_id = _campaign_id(args.campaign)
    found = _with_db(settings, lambda conn: regulator.report(conn, campaign_id, settings))
    text = regulator.html(found) if args.html else found.model_dump_json(indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if not found.ledger.verified:
        print(f"notifier: {found.ledger.problem}", file=sys.stderr)
    return 0 if found.ledger.verified else 1


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import audit, retention

    try:
        age = retention.parse_age(args.older_than)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None

    async def work(conn: Any) -> int:
        found = await retention.purgeable(conn, age)
        for campaign in found:
            if args.dry_run:
                print(
                    f"would purge campaign {campaign.campaign_id} "
                    f"({campaign.recipients} recipients)"
                )
                continue
            changed = await retention.purge(conn, campaign.campaign_id)
            await audit.record(
                conn,
                key_id=None,
                action="cli purge",
                target=str(campaign.campaign_id),
                status=0,
                client="cli",
            )
            print(f"purged campaign {campaign.campaign_id}: {changed} recipients' contact details")
        if not found:
            print(f"no finished campaign older than {args.older_than} holds contact details")
        return 0

    return _with_db(settings, work)


def cmd_seal(settings: Settings, args: argparse.Namespace) -> int:
    from notifier import audit
    from notifier.sealing import Sealer, SealError, reseal

    sealer = Sealer.from_settings(settings)

    async def work(conn: Any) -> int:
        try:
            plain, resealed = await reseal(conn, sealer, batch=args.batch)
        except SealError as exc:
            print(f"notifier: stopped: {exc}; is every key still in NOTIFIER_DATA_KEYS?")
            return 1
        await audit.record(
            conn, key_id=None, action="cli seal", target=None, status=0, client="cli"
        )
        print(
            f"sealed {plain} recipients' contacts that were in plaintext; re-sealed {resealed} "
            "under the current key"
        )
        return 0

    return _with_db(settings, work)


def cmd_new_data_key(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.sealing import new_data_key

    print(new_data_key(args.id))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="notifier", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply sql/ migrations (safe to run twice)").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("api", help="serve the REST API").set_defaults(func=cmd_api)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True
    )
    kc = keys.add_parser("create", help="create a key and print its secret once")
    kc.add_argument("--name", required=True)
    kc.add_argument("--scopes", default=",".join(Scope))
    kc.add_argument("--expires-in-days", type=int, default=30)
    kc.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="every key: expiry, last use, state").set_defaults(
        func=cmd_keys_list
    )
    kr = keys.add_parser("revoke", help="refuse a key from its next request on")
    kr.add_argument("id")
    kr.set_defaults(func=cmd_keys_revoke)
    ko = keys.add_parser(
        "rotate", help="a new secret for a key's name and scopes; the old one is revoked"
    )
    ko.add_argument("id")
    ko.add_argument("--expires-in-days", type=int, default=30)
    ko.set_defaults(func=cmd_keys_rotate)
    kd = keys.add_parser(
        "new-data-key",
        help="print a fresh key for NOTIFIER_DATA_KEYS (id:base64) or NOTIFIER_LOOKUP_KEY "
        "(the part after the colon)",
    )
    kd.add_argument("--id", default=time.strftime("k%Y%m%d"), help="the key's id")
    kd.set_defaults(func=cmd_new_data_key)
    au = sub.add_parser("audit", help="the latest mutating calls, newest first")
    au.add_argument("--limit", type=int, default=100)
    au.set_defaults(func=cmd_audit)
    led = sub.add_parser("ledger", help="the delivery ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    lv = led.add_parser(
        "verify", help="recompute a campaign's hash chain; exit 1 at the first broken link"
    )
    lv.add_argument("campaign", help="campaign id")
    lv.set_defaults(func=cmd_ledger_verify)
    pl = sub.add_parser(
        "plan",
        help="a campaign's deadlines and forecast finish; exit 1 if it will miss a deadline",
    )
    pl.add_argument("campaign", help="campaign id")
    pl.set_defaults(func=cmd_plan)
    rr = sub.add_parser(
        "regulator-report",
        help="a campaign's report for the regulator, as JSON (or HTML); exit 1 if its ledger "
        "does not verify",
    )
    rr.add_argument("campaign", help="campaign id")
    rr.add_argument("--html", action="store_true", help="a printable HTML page instead of JSON")
    rr.add_argument("-o", "--output", help="write to this file instead of standard output")
    rr.set_defaults(func=cmd_regulator_report)
    pu = sub.add_parser(
        "purge",
        help="remove contact details of campaigns finished longer ago than --older-than",
    )
    pu.add_argument("--older-than", required=True, help="an age such as 30d or 12h")
    pu.add_argument("--dry-run", action="store_true", help="only list what would be purged")
    pu.set_defaults(func=cmd_purge)
    se = sub.add_parser(
        "seal",
        help="encrypt contacts stored in plaintext, and re-seal those under older keys with "
        "the first key of NOTIFIER_DATA_KEYS",
    )
    se.add_argument("--batch", type=int, default=5000, help="recipients per transaction")
    se.set_defaults(func=cmd_seal)
    _add_installed_commands(sub)
    return p


def _add_installed_commands(sub: Subcommands) -> None:
    """The commands other packages register under the `notifier.commands` entry points."""
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register: Register = entry.load()
        except (ImportError, AttributeError) as exc:
            # Listed and refused with the reason, rather than `--help` itself failing.
            broken = sub.add_parser(entry.name, help=f"(cannot be loaded: {exc})")
            broken.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            broken.set_defaults(func=_unloadable(entry.name, exc))
            continue
        register(sub)


def _unloadable(name: str, exc: Exception) -> Callable[[Settings, argparse.Namespace], int]:
    def refuse(settings: Settings, args: argparse.Namespace) -> int:
        print(f"notifier: the {name} command cannot be loaded: {exc}", file=sys.stderr)
        return 2

    return refuse


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
