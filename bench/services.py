"""What the benchmark runs against: a fresh database, a Redis database, and the service's
own processes (sandbox, API, workers), each started as operators start them.

Everything started here is stopped here, by process id, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from notifier.settings import Settings
from notifier.tooling.embedded import EmbeddedServices, free_port
from notifier.tooling.stack import settings_env

ARQ_HEALTH_KEY = "notifier:queue:health-check"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class PortTaken(RuntimeError):
    """A service could not bind its port: something else took it after it was chosen."""


def with_database(url: str, name: str) -> str:
    """The same server URL naming another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@dataclass
class Backends:
    """A database of the benchmark's own on the configured (or an embedded) Postgres, and
    the configured (or an embedded) Redis, whose database is flushed before and after."""

    settings: Settings
    workdir: Path
    server_url: str = ""
    database_url: str = ""
    database_name: str = ""
    redis_url: str = ""
    embedded: EmbeddedServices | None = None

    async def open(self) -> None:
        need_pg = not self.settings.database_url
        need_redis = not self.settings.redis_url
        if need_pg or need_redis:
            self.embedded = EmbeddedServices(self.workdir / "embedded")
            await asyncio.to_thread(self.embedded.start, postgres=need_pg, redis=need_redis)
        self.server_url = (
            self.settings.database_url or (self.embedded and self.embedded.database_url) or ""
        )
        self.redis_url = (
            self.settings.redis_url or (self.embedded and self.embedded.redis_url) or ""
        )
        self.database_name = f"notifier_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database_name}"')
        finally:
            await admin.close()
        self.database_url = with_database(self.server_url, self.database_name)
        await self.flush_redis()

    async def flush_redis(self) -> None:
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()

    async def close(self) -> None:
        if self.database_name and self.server_url:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                admin = await asyncpg.connect(self.server_url)
                try:
                    await admin.execute(
                        f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)'
                    )
                finally:
                    await admin.close()
            self.database_name = ""
        if self.redis_url:
            with contextlib.suppress(OSError, aioredis.RedisError):
                await self.flush_redis()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None

    async def versions(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.database_url)
        try:
            postgres = str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return {"postgres": postgres, "redis": str(info.get("redis_version", "?"))}


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark itself dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One process the benchmark started; its output goes to a log file."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


CALLBACK_CONCURRENCY = 128


@dataclass
class Services:
    """The sandbox, the API and the workers as separate `python -m notifier` processes."""

    settings: Settings
    workdir: Path
    sandbox: Child | None = None  # the SMTP side: email goes here
    sandbox_sms: Child | None = None  # the Twilio side: SMS and their callbacks
    api: Child | None = None
    workers: list[Child] = field(default_factory=list)
    api_url: str = ""
    sandbox_url: str = ""
    sandbox_sms_url: str = ""
    _ports: list[int] = field(default_factory=list)

    def configure(self, database_url: str, redis_url: str, rate: float) -> None:
        """The settings every service process gets (the ports are chosen at start)."""
        self.settings = self.settings.replace(
            database_url=database_url,
            redis_url=redis_url,
            api_host="127.0.0.1",
            smtp_host="127.0.0.1",
            smtp_tls="none",
            smtp_username=None,
            smtp_password=None,
            email_rate=rate,
            sms_rate=rate,
            log_level="WARNING",
        )

    def _pick_ports(self) -> None:
        ports: list[int] = []
        while len(ports) < 5:
            if (port := free_port()) not in ports:
                ports.append(port)
        self._ports = ports
        smtp_port, http_port, _, sms_port, api_port = ports
        self.sandbox_url = f"http://127.0.0.1:{http_port}"
        self.sandbox_sms_url = f"http://127.0.0.1:{sms_port}"
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.settings = self.settings.replace(
            api_port=api_port,
            public_base_url=self.api_url,
            smtp_port=smtp_port,
            twilio_base_url=self.sandbox_sms_url,
        )

    async def _spawn(self, name: str, *args: str) -> Child:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "notifier",
                *args,
                env=settings_env(self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops these
                preexec_fn=_die_with_parent,
            )
        return Child(name, proc, log_path)

    async def command(self, *args: str) -> str:
        """Run a one-off `notifier` command (migrate, keys create); returns its stdout."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifier",
            *args,
            env=settings_env(self.settings),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"notifier {' '.join(args)} failed: {err.decode(errors='replace')}")
        return out.decode()

    async def start(self, workers: int) -> None:
        """Start the sandbox and the API and wait until they answer; then the workers.
        Ports are chosen free, but another process may take one first: then try again."""
        for attempt in range(3):
            self._pick_ports()
            smtp, http, spare, sms = (str(p) for p in self._ports[:4])
            # No message texts kept: the checks need only who received what, and the
            # sandbox's memory then stays small at a million messages. One sandbox process
            # per protocol: in one process, thousands of SMS callbacks a second slow every
            # SMTP round trip, and email (four round trips a message) starves.
            self.sandbox = await self._spawn(
                "sandbox", "sandbox", "--smtp-port", smtp, "--http-port", http, "--no-bodies"
            )
            # Callbacks come many at a time, as from Twilio: with few in flight, each one's
            # wait for its receipt's write would pace the run, not the service's capacity.
            self.sandbox_sms = await self._spawn(
                "sandbox-sms",
                "sandbox",
                "--smtp-port",
                spare,
                "--http-port",
                sms,
                "--no-bodies",
                "--callback-concurrency",
                str(CALLBACK_CONCURRENCY),
            )
            self.api = await self._spawn("api", "api")
            try:
                await self._wait_http(self.sandbox, self.sandbox_url + "/_sandbox/stats")
                await self._wait_http(self.sandbox_sms, self.sandbox_sms_url + "/_sandbox/stats")
                await self._wait_http(self.api, self.api_url + "/healthz")
                break
            except PortTaken:
                await self.stop()
                if attempt == 2:
                    raise
        for i in range(workers):
            self.workers.append(await self._spawn(f"worker-{i + 1}", "worker"))
        if workers:
            await self._wait_workers()

    async def _wait_http(self, child: Child, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if child.proc.returncode is not None:
                    tail = child.log_tail()
                    if "address already in use" in tail:
                        raise PortTaken(tail)
                    raise RuntimeError(f"{child.name} exited:\n{tail}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{child.name} did not answer at {url}:\n{child.log_tail()}")

    async def _wait_workers(self) -> None:
        """arq writes its health key once a worker's loop runs; then give the others a
        moment, and make sure none has died."""
        assert self.settings.redis_url
        client = aioredis.Redis.from_url(self.settings.redis_url)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not await client.exists(ARQ_HEALTH_KEY):
                self.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("no worker became ready:\n" + self.workers[0].log_tail())
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()
        await asyncio.sleep(1.0)
        self.check_alive()

    def children(self) -> list[Child]:
        return [
            c for c in (self.sandbox, self.sandbox_sms, self.api, *self.workers) if c is not None
        ]

    def check_alive(self) -> None:
        """Raise, with the end of its log, if a service process has exited."""
        for child in self.children():
            if child.proc.returncode is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}"
                )

    async def stop(self) -> None:
        """Workers first (they finish their batches), then the API, then the sandbox."""
        for group in (self.workers, [self.api], [self.sandbox, self.sandbox_sms]):
            alive = [c for c in group if c is not None and c.proc.returncode is None]
            for child in alive:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
            for child in alive:
                try:
                    await asyncio.wait_for(child.proc.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.kill()
                    await child.proc.wait()
        self.workers.clear()
        self.api = self.sandbox = self.sandbox_sms = None


def make_workdir() -> Path:
    """A private temporary directory for generated files, logs and embedded servers."""
    return Path(tempfile.mkdtemp(prefix="notifier-bench-"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
