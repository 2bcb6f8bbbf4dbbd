"""The Redis backend of the work queue: ``nst-bot worker`` processes on any machine run the bot's jobs.

Built on Redis Streams with one consumer group, through redis-py (see docs/scaling.md for why). Layout:

- ``nst:jobs`` (stream, group ``workers``): one entry per :meth:`RedisWorkQueue.submit`, the jobs as a
  :class:`~bot.work.protocol.RunJobs` JSON whose paths are replaced by Redis keys, plus each job's run id (a fresh
  id per hand-over, so a late event from an earlier attempt is never taken for the current one). Workers read it
  with ``XREADGROUP``; the entry stays in the group's pending list, under the worker's name, until this backend
  has seen every job in it end (then ``XACK`` + ``XDEL``).
- ``nst:input:{run}:{n}``: the content (n = 0) and style images' bytes; ``nst:result:{run}``: the finished image,
  written by the worker before its ``Done`` event. Both expire after ``[queue] transfer_ttl``.
- ``nst:events`` (stream): every event of every worker, tagged with its run id, read here with ``XREAD``. Each
  job entry names the stream its events go to (and the bot process it is from): several bot processes, one per
  part of the Discord shards (``[discord] shard_ids``), share one pool of workers, each reading its own
  ``nst:events:shards-…`` stream.
- ``nst:worker:{name}``: a worker's heartbeat (its device, batch size and memory budget), refreshed every
  ``lost_after / 3`` and expiring after ``lost_after``. A pending entry whose worker has no heartbeat was taken by
  a worker that died: its jobs end in ``Lost`` and the core decides whether they run again. The bot admits and
  batches jobs within the smallest budget the live workers announce; a worker refuses (``Failed``, saying what
  to lower) a job predicted over its own.
- ``nst:cancel:{run}`` and the channel ``nst:cancel``: stop requests (the key for a job not started yet).

One pool, many bot processes: the first connection clears what an earlier run of the same bot process left (its
own entries and events stream), because the bot's store is the record and resubmits unfinished jobs itself.
Redis unreachable at start is not fatal: the bot serves (new requests are answered "temporarily unavailable")
and connects as soon as Redis is there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from redis.exceptions import RedisError, ResponseError

from bot.config import QueueConfig
from bot.intake.decoder import DecoderPool

from .protocol import Done, Event, Failed, JobSpec, Lost, Progress, RunJobs, Started, from_json, to_json
from .queue import WorkUnavailable
from .worker_output import UnusableResult, fetch_checked_result, without_odd_preview
from .redis_link import (GROUP, JOBS, RedisLink, cancel_key, input_key, result_key, unavailable_message,
                         where)

log = logging.getLogger(__name__)

NOT_SAVED = "The result could not be saved on the bot's disk; the admins can see the log."
UNUSABLE = "The engine sent back a picture that is not what was asked for; the admins can see the log."


@dataclass
class _Run:
    """One hand-over of one job: what the worker got, and where it is in Redis."""

    spec: JobSpec
    run: str
    entry: str
    inputs: list[str]


class RedisWorkQueue(RedisLink):
    """Hands jobs to ``nst-bot worker`` processes through Redis and relays their events (see the module doc)."""

    def __init__(self, config: QueueConfig, decoder: DecoderPool | None = None, owner: str = "") -> None:
        super().__init__(config, owner)
        self._own_decoder = decoder is None
        self.decoder = decoder or DecoderPool(workers=1)  # where results are checked: the bot passes its own
        self._runs: dict[str, _Run] = {}  # by job id
        self._jobs_by_run: dict[str, str] = {}
        self._entries: dict[str, set[str]] = {}  # stream entry id → job ids still running from it
        self._events_seen = "0-0"
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------------------------- WorkQueue contract

    async def start(self) -> None:
        await self._connect_first()
        self._tasks = [asyncio.create_task(self._read_events(), name="redis-events"),
                       asyncio.create_task(self._watch(), name="redis-watch")]

    def free_slots(self) -> int:
        if not self._up.is_set():
            return 0
        return max(0, self.roster.capacity() - len(self._runs))

    def workers(self) -> int:
        return len(self.roster.live) if self._up.is_set() else 0

    async def submit(self, jobs: Sequence[JobSpec]) -> None:
        if not self._up.is_set():
            raise WorkUnavailable(unavailable_message(self.config))
        runs = {spec.job_id: uuid.uuid4().hex for spec in jobs}
        files = await asyncio.to_thread(_read_inputs, jobs)
        remote: list[JobSpec] = []
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for spec in jobs:
                    keys = tuple(input_key(runs[spec.job_id], index) for index in range(len(spec.inputs)))
                    for key, data in zip(keys, files[spec.job_id]):
                        pipe.set(key, data, ex=int(self.config.transfer_ttl))
                    remote.append(dataclasses.replace(spec.with_inputs(keys), result=Path(spec.result).name))
                pipe.xadd(JOBS, {"jobs": to_json(RunJobs(tuple(remote))), "runs": json.dumps(runs), **self.sender})
                entry = (await pipe.execute())[-1].decode()
        except RedisError as error:
            self._mark_down(error)
            raise WorkUnavailable(unavailable_message(self.config)) from None
        self._entries[entry] = set(runs)
        for spec, sent in zip(jobs, remote):
            self._runs[spec.job_id] = _Run(spec, runs[spec.job_id], entry, list(sent.inputs))
            self._jobs_by_run[runs[spec.job_id]] = spec.job_id

    async def cancel(self, job_id: str) -> None:
        if job_id in self._runs:
            await self._request_stop(self._runs[job_id].run, job_id)

    async def abort(self, job_id: str) -> None:
        run = self._runs.get(job_id)
        if run is None:
            return
        await self._request_stop(run.run, run.spec.job_id)
        await self._end(run, Lost(job_id, "stopped by force: it ran past the time limit"))

    async def close(self) -> None:
        # Not task.cancel(): redis-py's asyncio client can swallow a cancel inside a blocking read and hang.
        self._closing.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for run in list(self._runs.values()):  # the workers need not finish jobs nobody waits for
            await self._request_stop(run.run, run.spec.job_id)
        await self.redis.aclose()
        if self._own_decoder:
            await self.decoder.close()

    # ------------------------------------------------------------------------------------------------ events

    async def _read_events(self) -> None:
        """Relay the workers' events in order; an event is marked seen only once it has been handled."""
        while not self._closing.is_set():
            if not self._up.is_set():
                await self._pause(0.5)
                continue
            try:
                reply = await self.redis.xread({self.events_stream: self._events_seen}, count=100, block=1000)
                for _, entries in reply or ():
                    for entry, fields in entries:
                        await self._handle(fields)
                        self._events_seen = entry.decode()
            except RedisError as error:
                self._mark_down(error)
            except Exception:  # a bug: keep relaying the other jobs' events
                log.exception("could not handle a worker event")
                self._events_seen = entry.decode()

    async def _handle(self, fields: dict[bytes, bytes]) -> None:
        run_id = fields.get(b"run", b"").decode(errors="replace")
        job_id = self._jobs_by_run.get(run_id)
        event, problem = _parsed(fields)
        if job_id is None:  # an attempt this backend has already concluded (its worker is told to stop), or unknown
            return await self._stop_superseded(run_id) if isinstance(event, (Started, Progress)) else None
        if event is None:
            log.warning("ignoring a malformed worker event for job %s: %s", job_id, problem)
            return
        if getattr(event, "job", None) != job_id:
            log.warning("ignoring an event that names job %r under job %s's run", getattr(event, "job", None), job_id)
            return
        run = self._runs[job_id]
        if isinstance(event, (Started, Progress)):
            await self.events.put(without_odd_preview(event, run.spec) if isinstance(event, Progress) else event)
        elif isinstance(event, Done) and not event.cancelled:  # the worker's output path means nothing here
            await self._end(run, await self._fetch_result(run, event))
        elif isinstance(event, (Done, Failed, Lost)):
            await self._end(run, event)

    async def _fetch_result(self, run: _Run, done: Done) -> Done | Lost | Failed:
        """The worker's result, checked and written to the job's result path: ``done`` with the checked size;
        ``Lost`` when Redis no longer has it; ``Failed`` when it is not the picture the job asked for."""
        job_id = run.spec.job_id
        try:
            checked = await fetch_checked_result(self.redis, result_key(run.run), run.spec, self.decoder)
            if checked is None:
                return Lost(job_id, "its result expired in Redis before the bot could fetch it")
            await asyncio.to_thread(_write_atomically, Path(run.spec.result), checked[0])
        except UnusableResult as error:
            log.warning("job %s: its worker's result was refused: %s", job_id, error)
            return Failed(job_id, UNUSABLE)
        except OSError as error:
            log.warning("job %s: cannot write its result: %s", job_id, error)
            return Failed(job_id, NOT_SAVED)
        width, height = checked[1]
        return dataclasses.replace(done, output=run.spec.result, width=width, height=height)

    async def _end(self, run: _Run, event: Event) -> None:
        """Forget ``run``, clean its keys, acknowledge its stream entry once all its jobs ended, pass ``event`` on."""
        del self._runs[run.spec.job_id]
        del self._jobs_by_run[run.run]
        self._conclude(run.run)
        remaining = self._entries.get(run.entry, set())
        remaining.discard(run.spec.job_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(*run.inputs, result_key(run.run), cancel_key(run.run))
                if not remaining:
                    pipe.xack(JOBS, GROUP, run.entry)
                    pipe.xdel(JOBS, run.entry)
                await pipe.execute()
        except RedisError as error:  # only tidying: the keys expire, a stale entry is acknowledged by _watch
            log.info("could not tidy job %s's keys in Redis: %s", run.spec.job_id, error)
        if not remaining:
            self._entries.pop(run.entry, None)
        await self.events.put(event)

    # ------------------------------------------------------------------------------- workers and connection

    async def _watch(self) -> None:
        """Every few seconds: reconnect if needed, refresh the workers, report the jobs of dead workers lost."""
        interval = self.config.lost_after / 6
        while not self._closing.is_set():
            await self._pause(interval if self._up.is_set() else 1.0)
            if self._closing.is_set():
                return
            try:
                if not self._up.is_set():
                    await self._reconnect()
                await self._scan_workers()
                if time.monotonic() - self._up_since >= self.config.lost_after:
                    await self._reclaim_from_dead_workers()
            except RedisError as error:
                self._mark_down(error)
            except Exception:  # a bug: keep watching
                log.exception("the Redis work-queue watch failed")

    async def _reclaim_from_dead_workers(self) -> None:
        """Jobs in entries held by a worker without heartbeat end in ``Lost``; those entries leave the stream."""
        for entry, worker in await self.roster.orphaned_entries(self._entries):
            reason = f"its worker {worker} stopped responding (no heartbeat for {self.config.lost_after:g} s)"
            for job_id in sorted(self._entries.get(entry, ())):
                log.warning("job %s lost: %s", job_id, reason)
                await self._end(self._runs[job_id], Lost(job_id, reason))
            await self.redis.xack(JOBS, GROUP, entry)
            await self.redis.xdel(JOBS, entry)

    async def _reconnect(self) -> None:
        """After an outage: the group again if Redis lost it, and no job left waiting on an entry that is gone.
        (Or the first connection, when Redis could not be reached at start.)"""
        await (self.redis.ping() if self._prepared else self._prepare())
        try:
            await self.redis.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        newest = await self.redis.xrevrange(self.events_stream, count=1)
        if not newest or _stream_id(newest[0][0].decode()) < _stream_id(self._events_seen):
            self._events_seen = "0-0"  # Redis came back without its data: its event ids started again
        for entry in list(self._entries):
            if not await self.redis.xrange(JOBS, min=entry, max=entry):
                for job_id in sorted(self._entries.get(entry, ())):
                    await self._end(self._runs[job_id], Lost(job_id, "Redis restarted without its data"))
        self._mark_up()
        log.info("Redis at %s is reachable again", where(self.config.redis_url))



def _parsed(fields: dict[bytes, bytes]) -> tuple[Event | None, str]:
    """The event in a stream entry (checked by the protocol), or None and why not."""
    try:
        return from_json(fields[b"event"]), ""
    except (KeyError, ValueError) as error:
        return None, str(error)


def _read_inputs(jobs: Sequence[JobSpec]) -> dict[str, list[bytes]]:
    return {spec.job_id: [Path(path).read_bytes() for path in spec.inputs] for spec in jobs}


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def _stream_id(entry: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry.partition("-")
    return int(milliseconds), int(sequence or 0)
