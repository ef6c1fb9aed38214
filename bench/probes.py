"""Per-process CPU and memory from /proc (via psutil), Redis's own figures, and a sampler
that records them over time for the report and the chart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis.asyncio as aioredis

MB = 1024 * 1024
_AUX_NAMES = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process (0 once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def rss_bytes(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def postgres_cpu(database: str) -> tuple[dict[int, float], float]:
    """CPU seconds of each backend serving `database` (by its process title), and of the
    server's own background processes (checkpointer, WAL writer…), which serve every database
    on that server."""
    backends: dict[int, float] = {}
    postmasters: set[int] = set()
    for proc in psutil.process_iter(["cmdline", "cpu_times", "ppid"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        times = proc.info.get("cpu_times")
        if times is None or not cmdline.startswith("postgres:"):
            continue
        if f" {database} " in cmdline:
            backends[proc.pid] = float(times.user + times.system)
            postmasters.add(int(proc.info.get("ppid") or 0))
    aux = 0.0
    for pid in postmasters:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid)
            aux += sum(parent.cpu_times()[:2])
            for child in parent.children():
                with contextlib.suppress(psutil.Error):
                    if any(name in " ".join(child.cmdline()) for name in _AUX_NAMES):
                        aux += sum(child.cpu_times()[:2])
    return backends, aux


async def redis_figures(client: aioredis.Redis) -> tuple[int, float]:
    """(used_memory in bytes, CPU seconds of the whole Redis server)."""
    memory = await client.info("memory")
    cpu = await client.info("cpu")
    return int(memory["used_memory"]), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuSnapshot:
    """Cumulative CPU seconds per role at one moment."""

    at: float
    roles: Mapping[str, float]
    workers: Mapping[str, float]
    postgres: Mapping[int, float]

    def since(self, start: CpuSnapshot) -> dict[str, Any]:
        """CPU seconds used between `start` and this snapshot, per role, and the average
        number of cores each kept busy."""
        wall = max(self.at - start.at, 1e-9)
        used = {role: max(0.0, v - start.roles.get(role, 0.0)) for role, v in self.roles.items()}
        workers = {w: max(0.0, v - start.workers.get(w, 0.0)) for w, v in self.workers.items()}
        used["workers"] = sum(workers.values())
        # A backend that appeared during the interval counts from zero.
        used["postgres"] = sum(
            max(0.0, v - start.postgres.get(pid, 0.0)) for pid, v in self.postgres.items()
        )
        # Whatever else kept this machine busy meanwhile (other people's processes, the
        # kernel): the measured figures are only as clean as this is small.
        ours = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used.get("machine", 0.0) - ours)
        return {
            "wall_seconds": round(wall, 3),
            "cpu_seconds": {k: round(v, 3) for k, v in used.items()},
            "worker_cpu_seconds": {k: round(v, 3) for k, v in workers.items()},
            "cores_busy": {k: round(v / wall, 3) for k, v in used.items()},
        }


@dataclass
class Probe:
    """Reads the figures of the benchmark's processes, Postgres and Redis."""

    pids: Mapping[str, int]
    worker_pids: Mapping[str, int]
    database: str
    redis: aioredis.Redis

    async def cpu(self) -> CpuSnapshot:
        snapshot, _ = await self._read()
        return snapshot

    async def _read(self) -> tuple[CpuSnapshot, int]:
        backends, aux = await asyncio.to_thread(postgres_cpu, self.database)
        used_memory, redis_cpu = await redis_figures(self.redis)
        roles = {role: cpu_seconds(pid) for role, pid in self.pids.items()}
        roles["bench"] = cpu_seconds(os.getpid())
        roles["redis_server"] = redis_cpu
        roles["postgres_background"] = aux
        machine = psutil.cpu_times()
        roles["machine"] = float(
            machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        )
        workers = {name: cpu_seconds(pid) for name, pid in self.worker_pids.items()}
        snapshot = CpuSnapshot(at=time.monotonic(), roles=roles, workers=workers, postgres=backends)
        return snapshot, used_memory

    async def sample(self) -> dict[str, Any]:
        """One point of the timeline: memory of every process and of Redis, and cumulative
        CPU per role (the chart derives cores busy from consecutive points)."""
        snapshot, used_memory = await self._read()
        cpu = dict(snapshot.roles)
        cpu["workers"] = sum(snapshot.workers.values())
        cpu["postgres"] = sum(snapshot.postgres.values())
        return {
            "t": time.time(),
            "rss_mb": {
                name: round(rss_bytes(pid) / MB, 1)
                for name, pid in {**self.pids, **self.worker_pids}.items()
            },
            "redis_used_memory_mb": round(used_memory / MB, 2),
            "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        }


@dataclass
class Sampler:
    """Samples a probe every `interval` seconds in the background until stopped."""

    probe: Probe
    interval: float = 1.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def take(self) -> None:
        """One sample now, besides the regular ones (short phases get at least two)."""
        with contextlib.suppress(psutil.Error, aioredis.RedisError, OSError):
            self.samples.append(await self.probe.sample())

    def set_interval(self, seconds: float) -> None:
        """Sample every `seconds` from now on, starting with one sample right away."""
        self.interval = seconds
        self._wake.set()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            with contextlib.suppress(psutil.Error, aioredis.RedisError, OSError):
                self.samples.append(await self.probe.sample())
            self._wake.clear()
            pause = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def window(self, start: float, end: float) -> list[dict[str, Any]]:
        """Samples taken between two epoch times."""
        return [s for s in self.samples if start <= s["t"] <= end]


def memory_summary(samples: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Max, first and last RSS (MB) per process, and Redis's peak, over some samples."""
    out: dict[str, Any] = {}
    for name in names:
        values = [s["rss_mb"].get(name, 0.0) for s in samples if s["rss_mb"].get(name)]
        if values:
            out[name] = {"start": values[0], "end": values[-1], "max": max(values)}
    redis_values = [s["redis_used_memory_mb"] for s in samples]
    if redis_values:
        out["redis_used_memory"] = {
            "start": redis_values[0],
            "end": redis_values[-1],
            "max": max(redis_values),
        }
    return out
