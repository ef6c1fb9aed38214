"""What every step of the benchmark shares: the running services, HTTP clients of the API
and the sandbox, the probe and its sampler, the phases run so far and the checks made."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.campaigns import campaign_body
from bench.probes import Probe, Sampler
from bench.services import Backends, Services

UPLOAD_CHUNK = 256 * 1024


class BenchError(RuntimeError):
    """The service did something the benchmark cannot measure past (an error status, a
    stalled campaign); the message says what."""


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


async def file_chunks(path: Path, size: int = UPLOAD_CHUNK) -> AsyncIterator[bytes]:
    """A file's bytes in chunks, read off the event loop, for a streamed request body."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, size):
            yield chunk
    finally:
        handle.close()


@dataclass
class Harness:
    """Shared handles and the record of what ran and what was checked."""

    services: Services
    backends: Backends
    probe: Probe
    sampler: Sampler
    api: aiohttp.ClientSession
    sandbox: aiohttp.ClientSession
    sandbox_sms: aiohttp.ClientSession
    phases: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, name: str, expected: object, actual: object) -> bool:
        """Record whether a figure is what it must be; the run fails at the end if not."""
        ok = expected == actual
        self.checks.append({"check": name, "expected": expected, "actual": actual, "ok": ok})
        if not ok:
            print(f"  CHECK FAILED: {name}: expected {expected}, got {actual}", flush=True)
        return ok

    @asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Mark a span of the timeline (shaded and labelled in the chart)."""
        entry: dict[str, Any] = {"name": name, "start": time.time(), "end": None}
        self.phases.append(entry)
        await self.sampler.take()
        try:
            yield entry
        finally:
            await self.sampler.take()
            entry["end"] = time.time()

    async def call(
        self, method: str, path: str, *, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        """One API request; a status other than `expect` stops the benchmark."""
        async with self.api.request(method, path, **kwargs) as resp:
            body = await resp.read()
            if resp.status != expect:
                raise BenchError(
                    f"{method} {path}: {resp.status} {body[:2000].decode(errors='replace')}"
                )
        result: dict[str, Any] = orjson.loads(body)
        return result

    async def create_campaign(
        self, channels: Sequence[str], label: str, *, rate_cap: float | None = None
    ) -> str:
        body = campaign_body(channels, label, rate_cap=rate_cap)
        created = await self.call("POST", "/v1/campaigns", json=body, expect=201)
        return str(created["id"])

    async def upload(self, campaign_id: str, path: Path) -> tuple[dict[str, Any], float]:
        """One streamed POST of the whole file; returns the API's answer and the wall time."""
        started = time.perf_counter()
        result = await self.call(
            "POST",
            f"/v1/campaigns/{campaign_id}/recipients",
            data=file_chunks(path),
            headers={"Content-Type": "text/csv"},
        )
        return result, time.perf_counter() - started

    def _sandbox_for(self, channel: str) -> aiohttp.ClientSession:
        """Email lives in one sandbox process, SMS in the other."""
        return self.sandbox_sms if channel == "sms" else self.sandbox

    async def sandbox_get(self, path: str, channel: str, **params: str | int) -> Any:
        async with self._sandbox_for(channel).get(
            path, params={"channel": channel, **params}
        ) as resp:
            resp.raise_for_status()
            return orjson.loads(await resp.read())

    async def sandbox_stats(self) -> dict[str, Any]:
        """Both processes' stats as one: each channel from its own process."""
        email = await self.sandbox_get("/_sandbox/stats", "email")
        sms = await self.sandbox_get("/_sandbox/stats", "sms")
        return {**sms, "email": email["email"], "sms": sms["sms"]}

    async def sandbox_reset(self) -> None:
        for session in (self.sandbox, self.sandbox_sms):
            async with session.post("/_sandbox/reset") as resp:
                resp.raise_for_status()
