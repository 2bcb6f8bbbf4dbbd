"""The Redis side both ends of the redis work queue share: key layout, connection, worker heartbeats.

:mod:`bot.work.redis_queue` (the bot's backend) documents the layout; ``nst-bot worker`` (:mod:`bot.work.worker`)
writes what :class:`WorkerRoster` reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Container
from urllib.parse import urlsplit

import redis.asyncio
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from bot.config import MAX_BATCH_SIZE, QueueConfig, redis_password

from .protocol import Ready
from .queue import WorkQueue, WorkUnavailable

log = logging.getLogger("bot.work.redis_queue")

JOBS = "nst:jobs"
GROUP = "workers"
EVENTS = "nst:events"
EVENTS_KEPT = 10_000  # the events stream is trimmed to about this many entries
CANCEL_CHANNEL = "nst:cancel"
WORKER_PREFIX = "nst:worker:"
CONCLUDED_RUNS_KEPT = 1000  # ended runs remembered, so a worker still computing one can be told to stop


def events_stream(owner: str) -> str:
    """Where a bot process reads its jobs' events: ``nst:events``, or ``nst:events:{owner}`` for one of several
    bot processes sharing the worker pool (each named by its shards)."""
    return f"{EVENTS}:{owner}" if owner else EVENTS


def is_events_stream(name: str) -> bool:
    """Whether a job entry's reply stream is one a bot reads (a worker writes its events nowhere else)."""
    return name == EVENTS or (name.startswith(EVENTS + ":") and len(name) <= 200)


def input_key(run: str, index: int) -> str:
    return f"nst:input:{run}:{index}"


def result_key(run: str) -> str:
    return f"nst:result:{run}"


def cancel_key(run: str) -> str:
    return f"nst:cancel:{run}"


def where(url: str) -> str:
    """``host:port/db`` of a Redis URL, for messages (never the credentials)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


def redis_options(config: QueueConfig) -> dict:
    """Connection options shared by the bot and the workers: the password from the environment, short timeouts."""
    return {"password": redis_password(), "socket_connect_timeout": 3, "socket_timeout": 10,
            "health_check_interval": 5}


def unavailable_message(config: QueueConfig) -> str:
    return (f"The image engines are temporarily unavailable (Redis at {where(config.redis_url)} cannot be "
            "reached); please try again in a few minutes.")


class RedisLink(WorkQueue):
    """A work queue's connection to Redis: the first connection, whether it is up (and since when), and a pause
    that :meth:`close` (``_closing``) cuts short."""

    def __init__(self, config: QueueConfig, owner: str = "") -> None:
        super().__init__()
        self.config = config
        self.owner, self.events_stream = owner, events_stream(owner)  # which bot process this is, where it listens
        self.sender = {"bot": owner, "events": self.events_stream}  # in each job entry: where its events go
        self.redis = redis.asyncio.Redis.from_url(config.redis_url, **redis_options(config))
        self.roster = WorkerRoster(self.redis)
        self._up = asyncio.Event()
        self._closing = asyncio.Event()
        self._up_since = 0.0
        self._prepared = False  # whether this bot has cleared an earlier bot's streams and made the group
        self._concluded: dict[str, None] = {}  # runs this bot has ended, oldest first (see _stop_superseded)

    def memory_budget_mb(self) -> float | None:
        return self.roster.memory_budget_mb()

    async def _connect_first(self) -> None:
        """Connect, or leave it to the reconnect loop when Redis cannot be reached; a refused password is fatal."""
        try:
            await self._prepare()
        except AuthenticationError as error:
            raise WorkUnavailable(f"Redis at {where(self.config.redis_url)} refused the connection ({error}); "
                                  "check NST_REDIS_PASSWORD or NST_REDIS_PASSWORD_FILE.") from None
        except RedisError as error:
            log.warning("Redis at %s is unreachable (%s); new requests are answered that the engines are "
                        "temporarily unavailable until it can be reached", where(self.config.redis_url), error)
            return
        self._mark_up()
        await self._scan_workers()
        log.info("work queue: Redis at %s, %d worker(s) connected", where(self.config.redis_url), len(self.roster.live))

    async def _prepare(self) -> None:
        """The first connection: clear what an earlier run of this bot process left (its job entries, its events)
        and create the consumer group. Other bot processes' entries stay: they share the workers."""
        await self.redis.ping()
        try:
            await self.redis.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        mine = [entry for entry, fields in await self.redis.xrange(JOBS)
                if fields.get(b"bot", b"").decode(errors="replace") == self.owner]
        async with self.redis.pipeline(transaction=True) as pipe:
            if mine:
                pipe.xack(JOBS, GROUP, *mine)
                pipe.xdel(JOBS, *mine)
            pipe.delete(self.events_stream)
            await pipe.execute()
        self._prepared = True

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up for :meth:`close`."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def refusal(self) -> str | None:
        return None if self._up.is_set() else unavailable_message(self.config)

    def _mark_up(self) -> None:
        self._up_since = time.monotonic()
        self._up.set()

    def _mark_down(self, error: Exception) -> None:
        if self._up.is_set():
            log.warning("Redis at %s is unreachable (%s); new jobs wait until it is back",
                        where(self.config.redis_url), error)
        self._up.clear()
        self.roster.live = {}

    async def _scan_workers(self) -> None:
        for name, info, restarted in await self.roster.refresh():
            await self.events.put(Ready(info["device"], name, info["batch_size"], restarted))

    async def _request_stop(self, run: str, job_id: str) -> None:
        """Ask whichever worker holds run ``run`` to stop it (a key for one not started yet, a message otherwise)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(cancel_key(run), 1, ex=int(self.config.transfer_ttl))
                pipe.publish(CANCEL_CHANNEL, run)
                await pipe.execute()
        except RedisError as error:
            log.warning("could not ask the workers to stop job %s: %s", job_id, error)


    def _conclude(self, run: str) -> None:
        """Remember that no job waits for ``run`` any more (it ended, was lost or was given up on)."""
        self._concluded[run] = None
        while len(self._concluded) > CONCLUDED_RUNS_KEPT:
            del self._concluded[next(iter(self._concluded))]

    async def _stop_superseded(self, run: str) -> None:
        """Tell the worker still computing a run this bot has ended to stop (once per run). A run it does not
        know is left alone: its events may arrive before the submit that made it is recorded."""
        if run not in self._concluded:
            return
        del self._concluded[run]
        log.info("a worker is still running superseded run %s; asked it to stop", run)
        await self._request_stop(run, f"of run {run}")


class WorkerRoster:
    """The workers with a live heartbeat, and the job entries still held by workers that have none."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client
        self.live: dict[str, dict] = {}  # worker name → its heartbeat (device, batch size)
        self.started: dict[str, float | None] = {}  # worker name → when its process started; kept through outages

    def capacity(self) -> int:
        """Jobs the live workers can run at once."""
        return sum(info["batch_size"] for info in self.live.values())

    def memory_budget_mb(self) -> float | None:
        """The smallest memory budget the live workers announce (any of them may take the next job); None when
        none does (workers from before budgets were announced)."""
        budgets = [info.get("memory_mb") for info in self.live.values()]
        return min((budget for budget in budgets if type(budget) in (int, float) and budget > 0), default=None)

    async def refresh(self) -> list[tuple[str, dict, bool]]:
        """Re-read the heartbeats; returns the workers that connected since the last call, each with whether it
        is a new process under a name seen before (a restarted container keeps its host name and pid)."""
        names = [key async for key in self.redis.scan_iter(match=WORKER_PREFIX + "*", count=500)]
        beats = await self.redis.mget(names) if names else []
        live = {key.decode()[len(WORKER_PREFIX):]: _parse_heartbeat(beat)
                for key, beat in zip(names, beats) if beat is not None}
        joined = []
        for name in sorted(live.keys() - self.live.keys()):
            info = live[name]
            started = info.get("started")
            restarted = name in self.started and self.started[name] != started
            self.started[name] = started
            joined.append((name, info, restarted))
            log.info("worker %s %s (%s, batch size %s)", name, "restarted" if restarted else "connected",
                     info.get("device"), info.get("batch_size"))
        for name in sorted(self.live.keys() - live.keys()):
            log.info("worker %s left", name)
        self.live = live
        return joined

    async def orphaned_entries(self, mine: Container[str]) -> list[tuple[str, str]]:
        """(entry id, worker) of pending entries among ``mine`` (this bot process's; the others reclaim their own)
        whose worker has no heartbeat; forgets such workers that hold none."""
        pending = await self.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=1000)
        orphaned = [(item["message_id"].decode(), item["consumer"].decode()) for item in pending
                    if item["consumer"].decode() not in self.live and item["message_id"].decode() in mine]
        for consumer in await self.redis.xinfo_consumers(JOBS, GROUP):
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            if name not in self.live and not consumer["pending"]:
                await self.redis.xgroup_delconsumer(JOBS, GROUP, name)
        return orphaned


def _parse_heartbeat(beat: bytes) -> dict:
    """A heartbeat's fields, each checked (any process that can write to Redis can write one): a device name,
    a batch size from 1 to the largest the bot allows, the process's start time and its memory budget (a
    positive number of MB); what is not so is replaced by a harmless value (device "?", batch size 1, no start
    time, no budget)."""
    try:
        info = json.loads(beat)
    except ValueError:
        info = None
    info = info if isinstance(info, dict) else {}
    device, batch_size, started = info.get("device"), info.get("batch_size"), info.get("started")
    memory_mb = info.get("memory_mb")
    if not (type(memory_mb) in (int, float) and math.isfinite(memory_mb) and memory_mb > 0):
        memory_mb = None
    if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and 1 <= batch_size <= MAX_BATCH_SIZE):
        batch_size = 1
    return {"device": device[:40] if isinstance(device, str) and device else "?", "batch_size": batch_size,
            "started": started if isinstance(started, (int, float, str)) and not isinstance(started, bool) else None,
            "memory_mb": memory_mb}
