"""Real parts for the Redis work-queue tests: a ``redis-server`` on a free loopback port, ``nst-bot worker``
processes, and a small driver that plays the job core's side of the :class:`~bot.work.queue.WorkQueue` contract.

The driver stands in for the core (bot/jobs/) so these tests exercise the backend and the workers alone: it hands
jobs over while ``free_slots()`` allows, hands a ``Lost`` job over once more, and records every event.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio

from bot.config import QueueConfig
from bot.work.protocol import Done, Event, Failed, JobSpec, Lost, Started
from bot.work.queue import WorkUnavailable
from bot.work.redis_queue import RedisWorkQueue
from nst_engine.options import StylizeOptions
from tests.conftest import REPO, make_content, make_style

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """Debian's ``redis-server`` on loopback with AOF fsynced on every write, so a SIGKILL loses no reply sent."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        if REDIS_SERVER is None:  # a skip with its reason, wherever a test starts a server
            pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def client(self) -> redis.asyncio.Redis:
        """A client of its own, e.g. to leave what an earlier bot would have left."""
        return redis.asyncio.Redis.from_url(self.url)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


class WorkerProcess:
    """A real ``python -m bot worker`` with its own config; one torch thread, so several share the cores."""

    def __init__(self, directory: Path, redis_url: str, weights: Path, *, batch_size: int = 1,
                 lost_after: float = 3, memory_mb: int = 0, env: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "worker.toml"
        self.config.write_text(f"""
[engine]
weights = "{weights}"
device = "cpu"
batch_size = {batch_size}
max_job_memory_mb = {memory_mb}

[queue]
backend = "redis"
redis_url = "{redis_url}"
lost_after = {lost_after}
""")
        self.log = directory / "worker.log"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--config", str(self.config)],
                                            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def name(self) -> str:
        return f"{socket.gethostname()}-{self.process.pid}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def write_inputs(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    content, style = directory / "content.png", directory / "style.png"
    make_content(72, 48).save(content)
    make_style(48).save(style)
    return content, style


def job(directory: Path, job_id: str, *, size: int = 48, iterations: int = 4, seed: int = 0) -> JobSpec:
    """A tiny job whose inputs live on the "bot's" disk (``directory``) and whose result goes there too."""
    content, style = write_inputs(directory / "inputs")
    options = StylizeOptions(size=size, iterations=iterations, seed=seed, device="cpu")
    return JobSpec(job_id, str(content), (str(style),), options, str(directory / f"{job_id}.png"))


@dataclass
class Driver:
    """The job core's side of the contract, kept to what these tests need (see the module docstring)."""

    queue: RedisWorkQueue
    waiting: list[JobSpec] = field(default_factory=list)
    specs: dict[str, JobSpec] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    endings: Counter = field(default_factory=Counter)
    retried: set[str] = field(default_factory=set)

    def add(self, *specs: JobSpec) -> None:
        for spec in specs:
            self.specs[spec.job_id] = spec
            self.waiting.append(spec)

    async def pump(self) -> None:
        """Hand over what the workers can take now, one job per submit, as the core does without batching; a
        submit refused because Redis is found down (a pooled connection reset after a restart) leaves the job
        waiting for the next pump, as bot/jobs/dispatch.py requeues it."""
        while self.waiting and self.queue.free_slots() > 0:
            spec = self.waiting.pop(0)
            try:
                await self.queue.submit([spec])
            except WorkUnavailable:
                self.waiting.insert(0, spec)
                return

    async def next_event(self, timeout: float) -> Event:
        event = await asyncio.wait_for(self.queue.events.get(), timeout)
        self.events.append(event)
        if isinstance(event, (Done, Failed, Lost)):
            self.endings[event.job] += 1
            if isinstance(event, Lost) and event.job not in self.retried:
                self.retried.add(event.job)
                self.waiting.insert(0, self.specs[event.job])
        return event

    async def wait_for(self, predicate, timeout: float = 120) -> Event:
        """Pump and collect events until one satisfies ``predicate``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self.pump()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no matching event in {timeout} s; saw {self.events[-10:]}")
            try:
                event = await self.next_event(min(remaining, 0.5))
            except asyncio.TimeoutError:
                continue
            if predicate(event):
                return event

    async def run_all(self, timeout: float = 180) -> None:
        """Until every added job has ended in ``Done`` or ``Failed`` (a ``Lost`` one is handed over again)."""
        def finished() -> bool:
            return all(any(isinstance(e, (Done, Failed)) and e.job == job_id for e in self.events)
                       for job_id in self.specs)
        if not finished():
            await self.wait_for(lambda _: finished(), timeout)

    def ends(self, job_id: str) -> list[Event]:
        return [e for e in self.events if isinstance(e, (Done, Failed, Lost)) and e.job == job_id]

    def workers_of(self, job_id: str) -> list[str]:
        return [e.worker for e in self.events if isinstance(e, Started) and e.job == job_id]


def queue_section(url: str) -> str:
    """The [queue] section of a bot config using the Redis at ``url``."""
    return f'[queue]\nbackend = "redis"\nredis_url = "{url}"\nlost_after = 3\n'


def scrape(port: int) -> dict[str, float]:
    """The metrics endpoint's samples, by name and labels."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def queue_config(url: str, lost_after: float = 3) -> QueueConfig:
    return QueueConfig(backend="redis", redis_url=url, lost_after=lost_after)


async def wait_workers(queue: RedisWorkQueue, count: int, timeout: float = 120) -> None:
    """Until ``count`` workers have a heartbeat (their engines are loaded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while queue.workers() < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {queue.workers()} of {count} workers connected")
        await asyncio.sleep(0.2)
