"""The dispatcher: hands waiting jobs to the work queue and applies what comes back.

Three tasks: the feeder gives the next batch to the work queue whenever it has a free slot; the receiver applies
the work queue's events (progress, done, failed, lost) and concludes jobs; a watchdog stops jobs past their time
limit. Every state
change is written to the store first, so a restart resumes where this left off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol

from bot.work.protocol import Done, Event, Failed, Fatal, JobSpec, Lost, Progress, Ready
from bot.work.queue import WorkQueue, WorkUnavailable

from .batching import choose_batch
from .frontend import DeliveryFailed, Frontend
from .lineup import Lineup
from .model import CANCELLED, DONE, FAILED, QUEUED, RUNNING, ActiveJob
from .policy import after_lost
from .store import JobStore

log = logging.getLogger(__name__)

OUR_FAULT = "Something went wrong on our side; please try again."


class Recorder(Protocol):
    """What the dispatcher reports for operators (``bot.ops.metrics.Metrics``, when metrics are on)."""

    def job_started(self, waited: float) -> None: ...
    def job_ended(self, outcome: str, ran: float | None = None) -> None: ...
    def engine_restarted(self) -> None: ...


def engine_kind(device: str) -> str:
    """The cost model's device for an engine's reported device name ("cpu", or a GPU's name)."""
    return "cpu" if device in ("cpu", "unknown", "?") else "cuda"


class Dispatcher:
    def __init__(self, store: JobStore, work: WorkQueue, lineup: Lineup, frontend: Frontend, *,
                 batch_size: int, job_timeout: float, recorder: Recorder | None = None,
                 memory_budget: Callable[[], float | None] = lambda: None) -> None:
        self.store, self.work, self.lineup, self.frontend = store, work, lineup, frontend
        self.recorder, self.memory_budget = recorder, memory_budget
        self.batch_size, self.job_timeout = batch_size, job_timeout
        self.device = "unknown"
        self.unavailable: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.wakeup = asyncio.Event()
        self.deadlines: dict[str, float] = {}  # running job → loop time its time limit passes
        self.deadlines_changed = asyncio.Event()
        self.timed_out: set[str] = set()

    def give_up(self, reason: str) -> None:
        """No engine can run jobs: say so once, to whoever watches :attr:`unavailable`."""
        log.error("the engine could not start: %s", reason)
        if not self.unavailable.done():
            self.unavailable.set_result(reason)

    # ---------------------------------------------------------------------------------------------- feeder

    async def feed(self) -> None:
        try:
            await self.work.start()
        except WorkUnavailable as error:
            return self.give_up(str(error))
        while True:
            while not (self.lineup.waiting and self.work.free_slots() > 0):
                self.wakeup.clear()
                await self.wakeup.wait()
            batch = self.lineup.take(choose_batch(self.lineup.waiting, self.batch_size, self._batch_key,
                                                  self.lineup.cost, self.memory_budget()))
            try:
                await self._start(batch)
            except Exception:  # keep serving whatever one batch does
                log.exception("jobs %s failed in the dispatcher", ", ".join(active.id for active in batch))
                for active in batch:
                    if active.job.active:
                        await self.conclude(active, FAILED, OUR_FAULT)

    def _batch_key(self, job_id: str) -> tuple | None:
        """None for a job that runs alone: an animation, one that ran before, or whose result is already made."""
        active = self.lineup.jobs[job_id]
        if active.job.animated or active.job.attempts or self.store.result_path(job_id).is_file():
            return None
        if active.batch_key is None:
            active.batch_key = active.job.options.batch_key(self.lineup.content_size(job_id))
        return active.batch_key

    async def _start(self, batch: list[ActiveJob]) -> None:
        head = batch[0]
        if self.store.result_path(head.id).is_file():  # made before a restart, perhaps even posted
            return await self.deliver(head, None)  # (such a job is never batched)
        limit = asyncio.get_running_loop().time() + self.job_timeout * len(batch)
        for active in batch:
            job = active.job
            job.state, job.started, job.attempts = RUNNING, time.time(), job.attempts + 1
            self.store.save(job, "state", "started", "attempts")
            if self.recorder and job.attempts == 1:
                self.recorder.job_started(job.started - job.created)
            active.restart()
            self.deadlines[active.id] = limit
        self.deadlines_changed.set()
        if len(batch) > 1:
            log.info("jobs %s run as one batch", ", ".join(active.id for active in batch))
        try:
            await self.work.submit([self._spec(active) for active in batch])
        except WorkUnavailable as error:  # Redis went away: the jobs wait for it (free_slots is 0 meanwhile)
            log.warning("jobs %s wait for the work queue: %s", ", ".join(active.id for active in batch), error)
            for active in batch:
                active.job.state, active.job.attempts = QUEUED, active.job.attempts - 1
                self.store.save(active.job, "state", "attempts")
                self.deadlines.pop(active.id, None)
                self.lineup.requeue(active.id)
            return
        for active in batch:
            await self.frontend.show(active)

    def _spec(self, active: ActiveJob) -> JobSpec:
        job_id, store = active.id, self.store
        init = store.init_path(job_id)
        return JobSpec(job_id, str(store.content_path(job_id)), tuple(map(str, store.style_paths(job_id))),
                       active.job.options, str(store.result_path(job_id)), str(init) if init.is_file() else "",
                       active.job.style_label.replace("*", ""), active.job.quality,  # the label without markdown
                       active.job.frames)

    # -------------------------------------------------------------------------------------------- receiver

    async def receive(self) -> None:
        while True:
            event = await self.work.events.get()
            try:
                await self.apply(event)
            except Exception:
                log.exception("handling %s failed", type(event).__name__)

    async def watch_time_limits(self) -> None:
        """Stop running jobs whose time limit passed (the work queue then reports them lost)."""
        while True:
            self.deadlines_changed.clear()
            try:
                async with asyncio.timeout_at(min(self.deadlines.values(), default=None)):
                    await self.deadlines_changed.wait()
            except TimeoutError:
                await self._stop_overdue(asyncio.get_running_loop().time())

    async def _stop_overdue(self, now: float) -> None:
        overdue = [job_id for job_id, limit in self.deadlines.items() if limit <= now]
        if not overdue:
            return
        log.warning("jobs %s passed the time limit; stopping them", ", ".join(overdue))
        for job_id in overdue:
            del self.deadlines[job_id]
            self.timed_out.add(job_id)
            await self.work.abort(job_id)

    async def apply(self, event: Event) -> None:
        if isinstance(event, Ready):
            if self.recorder and event.restarted:
                self.recorder.engine_restarted()
            self.device = event.device
            self.lineup.device = engine_kind(event.device)
            log.info("engine ready on %s", event.device)
            self.wakeup.set()
            return
        if isinstance(event, Fatal):
            return self.give_up(event.message)
        active = self.lineup.jobs.get(getattr(event, "job", ""))
        if active is None or active.id not in self.lineup.running:
            return  # a job already concluded (cancelled while an event was on its way)
        if isinstance(event, Progress):
            active.iteration, active.total, active.eta = event.iteration, event.total, event.eta
            active.frame, active.frames = event.frame, event.frames
            active.preview = event.preview or active.preview
            return
        if not isinstance(event, (Done, Failed, Lost)):
            return
        self.lineup.left_engine(active.id)
        self.deadlines.pop(active.id, None)
        self.wakeup.set()
        if isinstance(event, Done):
            await self._done(active, event)
        elif isinstance(event, Failed):
            await self.conclude(active, FAILED, event.message)
        else:
            await self._lost(active, event)

    async def _done(self, active: ActiveJob, event: Done) -> None:
        active.job.iterations_done = event.iterations
        active.job.device = event.device or self.device
        if event.cancelled:
            return await self.conclude(active, CANCELLED, f"Cancelled by {active.stopping_by or 'an admin'} after "
                                                          f"{event.iterations}/{active.total} iterations.")
        if event.elapsed:
            self.lineup.speed.learn(self.lineup.cost(active.id).work, event.elapsed / max(1, event.batch_size))
        await self.deliver(active, event.elapsed)

    async def _lost(self, active: ActiveJob, event: Lost) -> None:
        timed_out = active.id in self.timed_out
        self.timed_out.discard(active.id)
        state, message = after_lost(active, timed_out=timed_out, time_limit=self.job_timeout)
        if state != QUEUED:
            return await self.conclude(active, state, message, outcome="timed_out" if timed_out else None)
        log.warning("%s during job %s; retrying it", event.reason, active.id)
        if self.recorder:
            self.recorder.job_ended("lost")
        active.job.state = QUEUED
        self.store.save(active.job, "state")
        self.lineup.requeue(active.id)

    # -------------------------------------------------------------------------------------------- outcomes

    async def deliver(self, active: ActiveJob, elapsed: float | None) -> None:
        try:
            active.job.result_message_id = await self.frontend.deliver(active.job, elapsed,
                                                                       str(self.store.result_path(active.id)))
        except DeliveryFailed as error:
            return await self.conclude(active, FAILED, str(error))
        await self.conclude(active, DONE, "Done — the result is below.")

    def finish(self, active: ActiveJob, state: str, message: str, outcome: str | None = None) -> None:
        """Record the outcome and forget the job (``outcome``: the metrics' name for it, when not the state)."""
        job = active.job
        self.lineup.remove(job.id)
        self.deadlines.pop(job.id, None)
        job.state, job.finished, job.error = state, time.time(), message
        self.store.save(job, "state", "finished", "error", "iterations_done", "result_message_id", "device")
        log.info("job %s %s: %s", job.id, state, message)
        if self.recorder:
            self.recorder.job_ended(outcome or state, job.finished - job.started if job.started else None)

    async def conclude(self, active: ActiveJob, state: str, message: str, outcome: str | None = None) -> None:
        """Record the outcome and show it."""
        self.finish(active, state, message, outcome)
        await self.frontend.concluded(active)
