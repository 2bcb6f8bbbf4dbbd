"""The Redis side both ends of the redis work queue share: key layout, connection, worker heartbeats.

:mod:`bot.work.redis_queue` (the bot's backend) documents the layout; ``nst-bot worker`` (:mod:`bot.worker`)
writes what :class:`WorkerRoster` reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit

import redis.asyncio
from redis.exceptions import RedisError

from ..config import QueueConfig, redis_password
from .protocol import Ready
from .queue import WorkQueue

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
    """A work queue's connection to Redis: whether it is up (and since when), and a pause that :meth:`close`
    (``_closing``) cuts short."""

    def __init__(self, config: QueueConfig) -> None:
        super().__init__()
        self.config = config
        self.redis = redis.asyncio.Redis.from_url(config.redis_url, **redis_options(config))
        self.roster = WorkerRoster(self.redis)
        self._up = asyncio.Event()
        self._closing = asyncio.Event()
        self._up_since = 0.0

    def unavailable(self) -> str | None:
        """A reply for new requests while Redis cannot be reached; ``None`` while it can."""
        return None if self._up.is_set() else unavailable_message(self.config)

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
        for name, info in await self.roster.refresh():
            await self.events.put(Ready(str(info.get("device", "?")), name, int(info.get("batch_size", 1))))

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

    def capacity(self) -> int:
        """Jobs the live workers can run at once."""
        return sum(max(1, int(info.get("batch_size", 1))) for info in self.live.values())

    async def refresh(self) -> list[tuple[str, dict]]:
        """Re-read the heartbeats; returns the workers that connected since the last call."""
        names = [key async for key in self.redis.scan_iter(match=WORKER_PREFIX + "*", count=500)]
        beats = await self.redis.mget(names) if names else []
        live = {key.decode()[len(WORKER_PREFIX):]: _parse_heartbeat(beat)
                for key, beat in zip(names, beats) if beat is not None}
        joined = [(name, live[name]) for name in sorted(live.keys() - self.live.keys())]
        for name, info in joined:
            log.info("worker %s connected (%s, batch size %s)", name, info.get("device"), info.get("batch_size"))
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
