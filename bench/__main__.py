"""`python -m bench`: import and dispatch at breach scale on this machine, and how close the
capacity planner's forecast comes to the finish of a campaign sent under a rate cap.

Postgres and Redis are the ones named by NOTIFIER_DATABASE_URL and NOTIFIER_REDIS_URL (a
fresh database `notifier_bench_<random>` is created on that server and dropped at the end;
the Redis database is flushed before and after), or embedded ones when those are unset.
The sandbox, the API and the workers each run as their own process, so that CPU and memory
are measured per process. Other NOTIFIER_* variables (batch size, chains, pool sizes) are
passed on to the service's processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from bench import chart, dispatch, forecast, report
from bench.accounts import AccountsFile, write_accounts
from bench.harness import BenchError, Harness
from bench.probes import Probe, Sampler
from bench.services import Backends, Services, make_workdir, remove_workdir
from bench.upload import BOTH, timed_import
from notifier.schemas.campaigns import MAX_RATE
from notifier.sealing import with_local_keys
from notifier.settings import Settings

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
# Per channel. Both channels at 2 x 750/s are under half of what the reference machine sends
# at full speed (2,700 to 3,800 deliveries/s), so the cap binds even on a slow day; 200,000
# accounts take about 270 s. Sending under a cap costs more CPU per message than at full
# speed (every chain waits on the limiter in short steps): at 2 x 1,000/s two busy cores
# could no longer keep email at its cap.
DEFAULT_PLAN_CAP = 750.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipients", type=int, default=1_000_000, help="accounts in the big file (N)")
    p.add_argument(
        "--small",
        type=int,
        default=100_000,
        help="the smaller dispatch size, compared with N (skipped if ≥ N)",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument(
        "--rate",
        type=float,
        default=100_000.0,
        help="provider rate per channel (messages/s); high means full speed",
    )
    p.add_argument(
        "--per-channel-at-n",
        action="store_true",
        help="also run email alone and SMS alone at N (by default only at the small size)",
    )
    p.add_argument(
        "--plan-cap",
        type=float,
        default=DEFAULT_PLAN_CAP,
        help="the planner-accuracy campaign's own rate cap (messages/s on each channel); "
        "keep it well below full speed, so that the cap binds",
    )
    p.add_argument("--skip-import", action="store_true", help="no timed import or raw COPY")
    p.add_argument(
        "--skip-dispatch", action="store_true", help="no dispatch runs (nor the planner's)"
    )
    p.add_argument("--skip-plan", action="store_true", help="no planner-accuracy run")
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="directory for latest.json and latest.png (default: bench/results)",
    )
    return p


async def _generate(
    workdir: Path, args: argparse.Namespace
) -> tuple[AccountsFile, AccountsFile | None]:
    print(f"generating {args.recipients:,} accounts…", flush=True)
    big = await asyncio.to_thread(write_accounts, workdir / "accounts.csv", args.recipients)
    small = None
    if not args.skip_dispatch and args.small < args.recipients:
        small = await asyncio.to_thread(write_accounts, workdir / "accounts-small.csv", args.small)
    return big, small


async def _dispatch_all(
    h: Harness,
    big: AccountsFile,
    small: AccountsFile | None,
    both_id: str | None,
    runs: dict[str, Any],
    *,
    per_channel_at_n: bool,
) -> None:
    """Email alone and SMS alone (each channel's own cost), then both channels, at the small
    size; then both channels at N (the growth), reusing the timed import's campaign. Each run
    is added to `runs` as soon as it is measured. Per-channel runs at N only when asked: at
    a million they would triple the run's length."""
    per_channel = [("small", small)] if small is not None else []
    if small is None or per_channel_at_n:
        per_channel.append(("n", big))
    for size, accounts in per_channel:
        assert accounts is not None
        for channel in ("email", "sms"):
            label = f"{channel} {accounts.rows:,}"
            campaign_id, upload = await dispatch.prepare(h, accounts, (channel,), label)
            run = await dispatch.run(h, label, campaign_id, (channel,), accounts)
            runs[f"{channel}_{size}"] = {**run, "untimed_upload": upload}
    if small is not None:
        label = f"email+sms {small.rows:,}"
        campaign_id, upload = await dispatch.prepare(h, small, BOTH, label)
        run = await dispatch.run(h, label, campaign_id, BOTH, small)
        runs["both_small"] = {**run, "untimed_upload": upload}
    label = f"email+sms {big.rows:,}"
    if both_id is None:
        both_id, _ = await dispatch.prepare(h, big, BOTH, label)
    runs["both_n"] = await dispatch.run(h, label, both_id, BOTH, big)


async def _measure(
    args: argparse.Namespace,
    backends: Backends,
    services: Services,
    workdir: Path,
    results: dict[str, Any],
) -> None:
    """Run the steps, filling `results` as each one completes (so an interrupted run still
    leaves what it measured)."""
    await services.command("migrate")
    secret = (
        await services.command("keys", "create", "--name", "bench", "--expires-in-days", "1")
    ).strip()
    big, small = await _generate(workdir, args)
    results["generated"] = {"n": big.as_json(), "small": small.as_json() if small else None}
    print(
        f"starting the sandbox, the API and {0 if args.skip_dispatch else args.workers} worker(s)…",
        flush=True,
    )
    await services.start(0 if args.skip_dispatch else args.workers)
    assert services.api is not None
    assert services.sandbox is not None and services.sandbox_sms is not None
    redis = aioredis.Redis.from_url(backends.redis_url)
    probe = Probe(
        pids={
            "api": services.api.pid,
            "sandbox": services.sandbox.pid,
            "sandbox_sms": services.sandbox_sms.pid,
        },
        worker_pids={w.name: w.pid for w in services.workers},
        database=backends.database_name,
        redis=redis,
    )
    sampler = Sampler(probe)
    sampler.start()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=1800)
    try:
        async with (
            aiohttp.ClientSession(
                services.api_url, timeout=timeout, headers={"Authorization": f"Bearer {secret}"}
            ) as api,
            aiohttp.ClientSession(services.sandbox_url, timeout=timeout) as sandbox,
            aiohttp.ClientSession(services.sandbox_sms_url, timeout=timeout) as sandbox_sms,
        ):
            h = Harness(services, backends, probe, sampler, api, sandbox, sandbox_sms)
            results["phases"], results["checks"] = h.phases, h.checks
            await asyncio.sleep(1.0)  # a first sample: the baseline
            both_id = None
            if not args.skip_import:
                results["import"], both_id = await timed_import(h, big)
            if not args.skip_dispatch:
                await _dispatch_all(
                    h,
                    big,
                    small,
                    both_id,
                    results.setdefault("dispatch", {}),
                    per_channel_at_n=args.per_channel_at_n,
                )
                if not args.skip_plan:
                    results["planner"] = await forecast.run(h, big, args.plan_cap)
    finally:
        await sampler.stop()
        await redis.aclose()
        results["series"] = sampler.samples
        results["redis_baseline_mb"] = (
            sampler.samples[0]["redis_used_memory_mb"] if sampler.samples else 0.0
        )


def _config(
    args: argparse.Namespace, settings: Settings, services: Services, backends: Backends
) -> dict[str, Any]:
    s = services.settings
    return {
        "recipients": args.recipients,
        "small": args.small,
        "workers": args.workers,
        "rate_per_channel": args.rate,
        "plan_rate_cap": None if args.skip_dispatch or args.skip_plan else args.plan_cap,
        "postgres": "configured" if settings.database_url else "embedded",
        "database": backends.database_name,
        "redis": "configured" if settings.redis_url else "embedded",
        "batch_size": s.batch_size,
        "chains_per_channel": s.chains_per_channel,
        "worker_max_jobs": s.worker_max_jobs,
        "smtp_pool_size": s.smtp_pool_size,
        "twilio_concurrency": s.twilio_concurrency,
    }


def _keep_partial(out: Path, results: dict[str, Any], why: str) -> None:
    """What an interrupted or failed run measured, apart from complete results."""
    if not results.get("import") and not results.get("dispatch"):
        return
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "partial.json", {**results, "incomplete": why})
    print(f"what was measured is in {out / 'partial.json'}", file=sys.stderr)


async def bench(args: argparse.Namespace, workdir: Path) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    settings = with_local_keys(Settings.from_env())
    backends = Backends(settings, workdir)
    services = Services(settings, workdir)
    started = time.monotonic()
    # The code measured is the code as the services start: others may commit meanwhile.
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "project": await asyncio.to_thread(report.project),
        "machine": report.machine(),
    }
    try:
        await backends.open()
        services.configure(backends.database_url, backends.redis_url, args.rate)
        results["config"] = _config(args, settings, services, backends)
        print(
            f"postgres: {'configured' if settings.database_url else 'embedded'} "
            f"(database {backends.database_name}); redis: "
            f"{'configured' if settings.redis_url else 'embedded'}",
            flush=True,
        )
        results["machine"].update(await backends.versions())
        await _measure(args, backends, services, workdir, results)
        results["config"] = _config(args, settings, services, backends)
        results["wall_seconds"] = round(time.monotonic() - started, 1)
    except asyncio.CancelledError:
        _keep_partial(args.out, results, "interrupted")
        raise
    except (BenchError, RuntimeError, OSError, aiohttp.ClientError, asyncpg.PostgresError) as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        for child in services.children():
            if tail := child.log_tail(10):
                print(f"--- {child.name} log:\n{tail}", file=sys.stderr)
        _keep_partial(args.out, results, f"failed: {exc}")
        return 1
    finally:
        with contextlib.suppress(Exception):
            await services.stop()
        await backends.close()
    rows = report.targets(results)
    results["targets"] = [r.as_json() for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "latest.json", results)
    await asyncio.to_thread(chart.draw, args.out / "latest.png", results)
    print()
    print(report.table(rows))
    print()
    print(report.cpu_table(results, results["machine"]["nproc"]))
    print(f"\n{args.out / 'latest.json'}\n{args.out / 'latest.png'}")
    return 0 if all(c["ok"] for c in results["checks"]) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.skip_import and args.skip_dispatch:
        print("nothing to do with both --skip-import and --skip-dispatch", file=sys.stderr)
        return 2
    if args.recipients < 1 or args.small < 1 or args.workers < 1:
        print("--recipients, --small and --workers must be at least 1", file=sys.stderr)
        return 2
    if not 0 < args.plan_cap <= MAX_RATE:
        print(f"--plan-cap must be in (0, {MAX_RATE:g}]", file=sys.stderr)
        return 2
    workdir = make_workdir()
    try:
        return asyncio.run(bench(args, workdir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        remove_workdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
