"""``nst-bot worker``: an engine on any machine that runs the bot's jobs through Redis (``[queue] backend = "redis"``).

It loads VGG19 once, then reads job entries from the ``nst:jobs`` stream (see :mod:`bot.work.redis_queue` for the
layout), fetches their images into a temporary folder, runs compatible jobs together (up to ``[engine] batch_size``)
with the same :func:`bot.work.runner.run_batch` as the local engine process, and sends events, previews and results
back through Redis. Two helper threads keep it reachable: a heartbeat (its absence tells the bot the worker died)
and a listener for cancels, which :func:`run_batch` checks before every optimiser iteration.

When Redis goes away the worker keeps its running jobs, holds their final events until Redis is back, and drops
progress updates meanwhile. SIGTERM (or Ctrl-C) stops its jobs at the next iteration and hands them back as
``Lost``, so the bot runs them elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nst_engine.cost import JobCost, animation_cost, batch_peak_mb, job_cost, over_budget
from nst_engine.errors import NSTError

from bot.config import Config, ConfigError

from .protocol import Done, Event, Failed, JobSpec, Lost, Progress, RunJobs, Started, from_json, to_json
from .redis_link import (CANCEL_CHANNEL, EVENTS, EVENTS_KEPT, GROUP, JOBS, WORKER_PREFIX, cancel_key,
                         is_events_stream, redis_options, result_key, where)

log = logging.getLogger("nst-worker")

EXPIRED = "The images for this job expired before an engine could take it; please send it again."
STOPPED = "its worker was stopped before it finished"
Result = TypeVar("Result")
OFFLINE = (RedisConnectionError, RedisTimeoutError)
GATHER_MS = 50  # how long a worker with room in its batch waits for jobs handed over just after the first


def run_worker(config: Config) -> int:
    """Load the engine, then serve jobs until SIGTERM/SIGINT; the exit status for the CLI."""
    if not config.queue.redis_url:
        raise ConfigError("`nst-bot worker` needs [queue] redis_url (redis://host:port/db) in the config.")
    logging.basicConfig(level=config.bot.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    from nst_engine.transfer import Engine, resolve_device

    from .runner import device_name, run_batch

    device = device_name() if resolve_device(config.engine.device).type == "cuda" else "cpu"
    engine = Engine(None, configured=config.engine.weights or None)
    worker = Worker(config, lambda specs, emit, stop: run_batch(engine, specs, emit, stop), device)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    log.info("worker %s: device %s, batch size %d, memory budget %d MB, Redis at %s", worker.name, device,
             config.engine.batch_size, worker.memory_budget_mb, where(config.queue.redis_url))
    worker.serve()
    log.info("worker %s stopped", worker.name)
    return 0


class Worker:
    """One engine's loop over the job stream. ``run`` is :func:`run_batch` bound to a loaded engine."""

    def __init__(self, config: Config, run: Callable[..., None], device: str) -> None:
        self.config = config
        self.run = run
        self.device = device
        self.batch_size = config.engine.batch_size
        self.memory_budget_mb = config.engine.memory_budget_mb()  # announced; jobs predicted over it are refused
        self.kind = "cpu" if device == "cpu" else "cuda"  # the cost model's device
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.started = time.time()  # tells a restart apart from a reconnect where the name repeats (a container)
        self.redis = redis.Redis.from_url(config.queue.redis_url, **redis_options(config.queue))
        self.stopping = threading.Event()
        self.offline = threading.Event()
        self.cancelled: set[str] = set()  # run ids asked to stop
        self.current: dict[str, str] = {}  # job id → run id of the jobs held now
        self.reply_to: dict[str, str] = {}  # job id → the events stream of the bot process that owns it
        self.results: dict[str, Path] = {}  # job id → where run_batch writes its result here

    def stop(self) -> None:
        self.stopping.set()

    def serve(self) -> None:
        threads = [threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True),
                   threading.Thread(target=self._listen_for_cancels, name="cancels", daemon=True)]
        for thread in threads:
            thread.start()
        while not self.stopping.is_set():
            entries = self._take()
            if entries:
                self._run_entries(entries)
        try:
            self.redis.delete(WORKER_PREFIX + self.name)
        except RedisError:
            pass

    # ------------------------------------------------------------------------------------------------ jobs

    def _take(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries to run next: wait up to a second for one, then up to ``GATHER_MS`` for each companion."""
        entries = self._read(self.batch_size, 1000)
        while entries and len(entries) < self.batch_size:
            more = self._read(self.batch_size - len(entries), GATHER_MS)
            if not more:
                break
            entries += more
        return entries

    def _read(self, count: int, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        try:
            reply = self.redis.xreadgroup(GROUP, self.name, {JOBS: ">"}, count=count, block=block_ms)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._create_group()  # a bot (re)started and cleared the stream
            return []
        except OFFLINE as error:
            self._went_offline(error)
            time.sleep(1)
            return []
        return [(entry, fields) for _, entries in reply or () for entry, fields in entries if fields]

    def _create_group(self) -> None:
        try:
            self.redis.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _run_entries(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Fetch the entries' images, then run their jobs in batches of equal batch key."""
        specs: list[JobSpec] = []
        for entry, fields in entries:
            try:
                message, runs, events = _job_entry(fields)
            except (KeyError, ValueError) as error:
                log.warning("dropping malformed job entry %s: %s", entry.decode(), error)
                self._retrying(lambda: self.redis.xack(JOBS, GROUP, entry))
                continue
            for spec in message.jobs:
                self.current[spec.job_id] = runs[spec.job_id]
                self.reply_to[spec.job_id] = events
                specs.append(spec)
        with tempfile.TemporaryDirectory(prefix="nst-worker-") as folder:
            local = [spec for spec in (self._fetch(spec, Path(folder)) for spec in specs) if spec is not None]
            runnable, refused = _within_budget(local, self.memory_budget_mb, self.kind)
            for spec, refusal in refused:
                self._emit(Failed(spec.job_id, refusal))
            for batch in _batches(runnable, self.batch_size, self.memory_budget_mb):
                if self.stopping.is_set():
                    for spec in batch:
                        self._emit(Lost(spec.job_id, STOPPED))
                    continue
                for spec in batch:
                    self._emit(Started(spec.job_id, self.name))
                self.run(batch, self._emit, self._should_stop)
        self.cancelled.difference_update(self.current.values())
        self.current.clear()
        self.reply_to.clear()
        self.results.clear()

    def _fetch(self, spec: JobSpec, folder: Path) -> JobSpec | None:
        """The job with its images written under ``folder``; ``None`` when it ended here (cancelled, expired)."""
        run = self.current[spec.job_id]
        keys = list(spec.inputs)
        cancelled, images = self._retrying(lambda: self.redis.pipeline().exists(cancel_key(run)).mget(keys).execute())
        if cancelled:
            self.cancelled.add(run)
            self._emit(Done(spec.job_id, 0, None, cancelled=True))
            return None
        if None in images:
            self._emit(Failed(spec.job_id, EXPIRED))
            return None
        job_folder = folder / spec.job_id
        job_folder.mkdir()
        paths = [job_folder / f"input-{index}" for index in range(len(keys))]
        for path, data in zip(paths, images):
            path.write_bytes(data)
        self.results[spec.job_id] = job_folder / Path(spec.result).name
        options = spec.options
        if self.config.engine.device != "auto":
            options = dataclasses.replace(options, device=self.config.engine.device)
        return dataclasses.replace(spec.with_inputs(tuple(map(str, paths))), result=str(self.results[spec.job_id]),
                                   options=options)

    def _should_stop(self, job_id: str) -> bool:
        return self.stopping.is_set() or self.current.get(job_id) in self.cancelled

    def _emit(self, event: Event) -> None:
        """Send ``event`` to the bot: progress only while online, the final events (and result) until delivered."""
        run = self.current[event.job]
        if isinstance(event, Done) and event.cancelled and run not in self.cancelled:
            event = Lost(event.job, STOPPED)  # stopped by SIGTERM, not by its requester
        fields, stream = {"run": run, "event": to_json(event)}, self.reply_to.get(event.job, EVENTS)
        if isinstance(event, Progress):
            if not self.offline.is_set():
                try:
                    self.redis.xadd(stream, fields, maxlen=EVENTS_KEPT, approximate=True)
                except OFFLINE as error:
                    self._went_offline(error)
            return
        if isinstance(event, Done) and not event.cancelled:
            data = self.results[event.job].read_bytes()
            self._retrying(lambda: self.redis.set(result_key(run), data, ex=int(self.config.queue.transfer_ttl)))
        self._retrying(lambda: self.redis.xadd(stream, fields, maxlen=EVENTS_KEPT, approximate=True))

    def _retrying(self, action: Callable[[], Result]) -> Result:
        """``action`` once Redis answers (the worker cannot report anything before that)."""
        while True:
            try:
                result = action()
            except OFFLINE as error:
                self._went_offline(error)
                time.sleep(1)
                continue
            if self.offline.is_set():
                self.offline.clear()
                log.info("Redis is reachable again")
            return result

    def _went_offline(self, error: Exception) -> None:
        if not self.offline.is_set():
            log.warning("Redis at %s is unreachable (%s); retrying", where(self.config.queue.redis_url), error)
            self.offline.set()

    # --------------------------------------------------------------------------------------- helper threads

    def _heartbeat(self) -> None:
        """Tell the bot this worker lives; also catch a cancel whose message the listener missed."""
        beat = json.dumps({"device": self.device, "batch_size": self.batch_size, "memory_mb": self.memory_budget_mb,
                           "host": socket.gethostname(), "pid": os.getpid(), "started": self.started})
        lost_after = self.config.queue.lost_after
        while not self.stopping.is_set():
            try:
                self.redis.set(WORKER_PREFIX + self.name, beat, ex=max(1, round(lost_after)))
                for run in list(self.current.values()):
                    if self.redis.exists(cancel_key(run)):
                        self.cancelled.add(run)
                if self.offline.is_set():
                    self.offline.clear()
                    log.info("Redis is reachable again")
            except OFFLINE as error:
                self._went_offline(error)
            except RedisError as error:
                log.warning("heartbeat failed: %s", error)
            self.stopping.wait(lost_after / 3)

    def _listen_for_cancels(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.redis.pubsub(ignore_subscribe_messages=True) as channel:
                    channel.subscribe(CANCEL_CHANNEL)
                    while not self.stopping.is_set():
                        message = channel.get_message(timeout=1.0)
                        if message is not None and message["data"].decode() in self.current.values():
                            self.cancelled.add(message["data"].decode())
            except RedisError:
                self.stopping.wait(1.0)


def _job_entry(fields: dict[bytes, bytes]) -> tuple[RunJobs, dict[str, str], str]:
    """A job entry's jobs, their run ids and the events stream of the bot process that sent them (``nst:events``
    from bots before several processes shared a pool); ``ValueError`` or ``KeyError`` when it is not one."""
    message, runs = from_json(fields[b"jobs"]), json.loads(fields[b"runs"])
    events = fields.get(b"events", EVENTS.encode()).decode()
    if not isinstance(message, RunJobs):
        raise ValueError("not a run message")
    if not is_events_stream(events):
        raise ValueError(f"{events[:60]!r} is not an events stream")
    return message, runs, events


def _cost(spec: JobSpec, device: str) -> tuple[tuple, JobCost | None]:
    """The job's batch key and predicted cost, from its images' headers; a key of its own and no cost when
    they cannot be read (it runs alone, and the engine reports what is wrong with it)."""
    from nst_engine.images import probe_image

    try:
        content = probe_image(spec.content)
        styles = [probe_image(style) for style in spec.styles]
    except NSTError:
        return ("alone", spec.job_id), None
    size, style_sizes = (content.width, content.height), [(s.width, s.height) for s in styles]
    if spec.frames > 1:  # an animation runs alone, costing all its frames
        return ("alone", spec.job_id), animation_cost(spec.options, size, spec.frames, style_sizes, device=device)
    return spec.options.batch_key(size), job_cost(spec.options, size, style_sizes, device=device)


def _within_budget(specs: list[JobSpec], budget_mb: float, device: str
                   ) -> tuple[list[tuple[JobSpec, tuple, JobCost | None]], list[tuple[JobSpec, str]]]:
    """The jobs that fit ``budget_mb`` alone, each with its batch key and cost, and the others with a refusal
    that says what to lower."""
    runnable, refused = [], []
    for spec in specs:
        key, cost = _cost(spec, device)
        refusal = cost and over_budget(spec.options, len(spec.styles), cost.peak_mb, budget_mb, device=device)
        if refusal:
            refused.append((spec, refusal))
        else:
            runnable.append((spec, key, cost))
    return runnable, refused


def _batches(jobs: list[tuple[JobSpec, tuple, JobCost | None]], size: int, budget_mb: float) -> list[list[JobSpec]]:
    """Jobs grouped by batch key (first come first), each group cut into batches of at most ``size`` jobs whose
    predicted peak together stays within ``budget_mb``."""
    groups: dict[tuple, list[tuple[JobSpec, JobCost | None]]] = {}
    for spec, key, cost in jobs:
        groups.setdefault(key, []).append((spec, cost))
    batches: list[list[JobSpec]] = []
    for group in groups.values():
        batch: list[JobSpec] = []
        costs: list[JobCost] = []
        for spec, cost in group:
            fuller = [*costs, cost] if cost else costs
            if batch and (len(batch) >= size or batch_peak_mb(fuller) > budget_mb):
                batches.append(batch)
                batch, costs, fuller = [], [], [cost] if cost else []
            batch.append(spec)
            costs = fuller
        batches.append(batch)
    return batches
