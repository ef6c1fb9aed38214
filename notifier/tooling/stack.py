"""The whole service on one machine (sandbox, API, workers) for the demo, tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from arq.worker import Worker

from notifier.app import create_app
from notifier.settings import Settings
from notifier.tooling.sandbox import Sandbox
from workers.settings import worker_settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    for name in Settings.__dataclass_fields__:
        value = getattr(settings, name)
        if value is not None:
            env["NOTIFIER_" + name.upper()] = str(value)
    return env


@dataclass
class LocalStack:
    """Starts a sandbox, the API on a free loopback port, and workers; stops what it started."""

    settings: Settings
    sandbox: Sandbox | None = None
    api_url: str = ""
    _runner: web.AppRunner | None = None
    _inline: list[tuple[Worker, asyncio.Task[Any]]] = field(default_factory=list)
    _procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self, *, sandbox: bool = True) -> Settings:
        """Start the sandbox and the API; returns the settings pointing at them."""
        if sandbox:
            self.sandbox = Sandbox(
                account_sid=self.settings.twilio_account_sid,
                auth_token=self.settings.twilio_auth_token,
            )
            await self.sandbox.start()
            self.settings = self.settings.replace(
                smtp_host="127.0.0.1",
                smtp_port=self.sandbox.smtp_port,
                smtp_tls="none",
                twilio_base_url=self.sandbox.base_url,
            )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}"
        self.settings = self.settings.replace(api_port=port, public_base_url=self.api_url)
        self._runner = web.AppRunner(create_app(self.settings), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self.settings

    async def start_inline_worker(self) -> Worker:
        """A worker in this process (its own arq Worker on this event loop)."""
        kwargs = worker_settings(self.settings)
        kwargs["handle_signals"] = False
        worker = Worker(**kwargs)
        task = asyncio.create_task(worker.async_run())
        self._inline.append((worker, task))
        return worker

    async def start_worker_process(self) -> asyncio.subprocess.Process:
        """A worker as its own process, as operators run them."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifier",
            "worker",
            env=settings_env(self.settings),
            stdin=asyncio.subprocess.DEVNULL,
        )
        self._procs.append(proc)
        return proc

    async def stop(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self._procs:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
            if proc.returncode is None:
                proc.kill()
        self._procs.clear()
        try:
            for worker, task in self._inline:
                await _close_inline(worker, task)
        finally:
            self._inline.clear()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            if self.sandbox is not None:
                await self.sandbox.stop()
                self.sandbox = None


async def _close_inline(worker: Worker, task: asyncio.Task[Any]) -> None:
    """Stop an inline worker: cancel its jobs, wait for them, then close it.

    arq's close() cancels the running jobs and gathers them without return_exceptions: a
    job cancelled while it records its result ends cancelled, and close() then raises
    CancelledError before closing its pool. Waiting for them here first, and forgetting
    them, lets close() finish its work."""
    worker.handle_sig(signal.SIGUSR1)
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    await worker.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
