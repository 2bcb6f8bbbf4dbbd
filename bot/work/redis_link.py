"""The Redis side both ends of the redis work queue share: key layout, connection, worker heartbeats.

:mod:`bot.work.redis_queue` (the bot's backend) documents the layout; ``nst-bot worker`` (:mod:`bot.work.worker`)
writes what :class:`WorkerRoster` reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit

import redis.asyncio
from redis.exceptions import AuthenticationError, RedisError

from bot.config import QueueConfig, redis_password

from .protocol import Ready
from .queue import WorkQueue, WorkUnavailable

log = logging.getLogger("bot.work.redis_queue")

JOBS = "nst:jobs"
GROUP = "workers"
EVENTS = "nst:events"
EVENTS_KEPT = 10_000  # the events stream is trimmed to about this many entries
CANCEL_CHANNEL = "nst:cancel"
WORKER_PREFIX = "nst:worker:"
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

    def __init__(self, config: QueueConfig) -> None:
        super().__init__()
        self.config = config
        self.redis = redis.asyncio.Redis.from_url(config.redis_url, **redis_options(config))
        self.roster = WorkerRoster(self.redis)
        self._up = asyncio.Event()
        self._closing = asyncio.Event()
        self._up_since = 0.0
        self._prepared = False  # whether this bot has cleared an earlier bot's streams and made the group

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
        """The first connection: clear what an earlier bot left in the streams and create the consumer group."""
        await self.redis.ping()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(JOBS, EVENTS)
            pipe.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
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
            await self.events.put(Ready(str(info.get("device", "?")), name, int(info.get("batch_size", 1)),
                                        restarted))

    async def _request_stop(self, run: str, job_id: str) -> None:
        """Ask whichever worker holds run ``run`` to stop it (a key for one not started yet, a message otherwise)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(cancel_key(run), 1, ex=int(self.config.transfer_ttl))
                pipe.publish(CANCEL_CHANNEL, run)
                await pipe.execute()
        except RedisError as error:
            log.warning("could not ask the workers to stop job %s: %s", job_id, error)


class WorkerRoster:
    """The workers with a live heartbeat, and the job entries still held by workers that have none."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client
        self.live: dict[str, dict] = {}  # worker name → its heartbeat (device, batch size)
        self.started: dict[str, float | None] = {}  # worker name → when its process started; kept through outages

    def capacity(self) -> int:
        """Jobs the live workers can run at once."""
        return sum(max(1, int(info.get("batch_size", 1))) for info in self.live.values())

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

    async def orphaned_entries(self) -> list[tuple[str, str]]:
        """(entry id, worker) of pending entries whose worker has no heartbeat; forgets such workers that hold none."""
        pending = await self.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=1000)
        orphaned = [(item["message_id"].decode(), item["consumer"].decode()) for item in pending
                    if item["consumer"].decode() not in self.live]
        for consumer in await self.redis.xinfo_consumers(JOBS, GROUP):
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            if name not in self.live and not consumer["pending"]:
                await self.redis.xgroup_delconsumer(JOBS, GROUP, name)
        return orphaned


def _parse_heartbeat(beat: bytes) -> dict:
    try:
        info = json.loads(beat)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}
