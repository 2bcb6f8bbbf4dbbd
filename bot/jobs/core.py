"""The job core's one entry point for front ends: admit, accept, queue, cancel, and read the queue.

A front end (the Discord face) creates a :class:`JobCore` with a store and a work queue, attaches itself as the
:class:`~.frontend.Frontend`, and watches :attr:`JobCore.unavailable` to learn that no engine can start.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from contextlib import AbstractContextManager
from typing import Sequence, Union

from PIL import Image

from nst_engine.animation import Animation
from nst_engine.cost import animation_cost, over_budget, style_size, worst_case_cost
from nst_engine.images import resize_long_side, scaled_size
from nst_engine.options import StylizeOptions

from bot.config import LimitsConfig
from bot.errors import UserError
from bot.ops.terminal import format_seconds
from bot.work.queue import WorkQueue

from .admission import Admission
from .disk import DiskBudget, estimate_png_bytes
from .dispatch import Dispatcher, Recorder, engine_kind
from .estimates import SpeedModel
from .frontend import Frontend
from .lineup import Lineup
from .model import CANCELLED, QUEUED, RUNNING, ActiveJob, Job
from .store import JobStore

log = logging.getLogger(__name__)

Picture = Union[Image.Image, Animation]

DISK_TROUBLE = ("The bot could not save your images (its disk is full or read-only); the admins can see the "
                "log. Please try again later.")
# What cancelling did: ended a queued job, asked a running one to stop, or found nothing to cancel.
CANCELLED_QUEUED, STOPPING, NOT_ACTIVE = "cancelled", "stopping", "not active"


def kept_inputs(options: StylizeOptions, content: Picture,
                styles: Sequence[Image.Image]) -> tuple[Picture, list[Image.Image]]:
    """The inputs shrunk to what the job and its re-runs (same size) can use: the content (every frame of an
    animation) to the output size, the styles to the size the engine uses them at (nst_engine.cost.style_size);
    never enlarged."""
    output = scaled_size(*content.size, options.size)
    kept = content.resized(options.size) if isinstance(content, Animation) else _fit(content, options.size)
    return kept, [_shrunk(style, style_size(style.size, output, options.style_scale)) for style in styles]


def _fit(image: Image.Image, long_side: int) -> Image.Image:
    return resize_long_side(image, long_side) if max(image.size) > long_side else image


def _shrunk(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return _fit(image, max(size))


class JobCore:
    def __init__(self, store: JobStore, work: WorkQueue, limits: LimitsConfig, *, batch_size: int,
                 job_timeout: float, disk: DiskBudget, recorder: Recorder | None = None,
                 memory_budget_mb: float | None = None) -> None:
        self.store, self.work, self.disk, self.recorder = store, work, disk, recorder
        self.configured_budget_mb = memory_budget_mb  # None: jobs are not bounded by their predicted memory
        self.lineup = Lineup(SpeedModel(), store.content_size, store.style_sizes)
        self.admission = Admission(limits, self.lineup, store.last_created_by)
        self.batch_size, self.job_timeout = batch_size, job_timeout
        self.dispatcher: Dispatcher | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self, frontend: Frontend) -> None:
        """Resume the stored queue and start dispatching (inside the running event loop)."""
        self.dispatcher = Dispatcher(self.store, self.work, self.lineup, frontend, batch_size=self.batch_size,
                                     recorder=self.recorder, job_timeout=self.job_timeout,
                                     memory_budget=self.memory_budget_mb)
        self.resume()
        self._tasks = [asyncio.create_task(self.dispatcher.feed(), name="nst-feeder"),
                       asyncio.create_task(self.dispatcher.receive(), name="nst-receiver"),
                       asyncio.create_task(self.dispatcher.watch_time_limits(), name="nst-time-limits")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.work.close()

    @property
    def unavailable(self) -> asyncio.Future[str]:
        """Resolves with the reason when no engine can run jobs (no weights, …)."""
        assert self.dispatcher is not None, "start() first"
        return self.dispatcher.unavailable

    @property
    def device(self) -> str:
        return self.dispatcher.device if self.dispatcher else "unknown"

    def resume(self) -> None:
        """Queue the jobs that were queued or running when the bot last stopped, in the order they came."""
        for job in self.store.active():
            if job.state == RUNNING:
                job.state = QUEUED
                self.store.save(job, "state")
            self.lineup.add(ActiveJob(job))
            self.lineup.enqueue(job.id)
        if self.lineup.waiting:
            log.info("resuming %d job(s) from the store", len(self.lineup.waiting))
            self._wake()

    # ------------------------------------------------------------------------------------------ requests

    def admit(self, user_id: int, limits: LimitsConfig | None = None, *, options: StylizeOptions | None = None,
              style_count: int = 1) -> AbstractContextManager[None]:
        """Hold a place for a request while it is processed; raises :class:`UserError` when over a limit (the
        config's, or ``limits`` in force where it came from), when the work queue takes no new jobs (Redis
        unreachable), or when a job with ``options`` and ``style_count`` styles could need more memory than the
        engines may use, whatever its images (so before anything is downloaded)."""
        refusal = self.work.refusal()
        budget = self.memory_budget_mb()
        if not refusal and options is not None and budget is not None:
            device = engine_kind(self.device)
            peak = worst_case_cost(options, style_count, device=device).peak_mb
            refusal = over_budget(options, style_count, peak, budget, device=device)
        if refusal:
            raise UserError(refusal)
        return self.admission.admit(user_id, limits)

    def handling(self) -> AbstractContextManager[None]:
        """Count a request from its arrival; raises :class:`~.admission.Busy` past ``[limits] max_in_flight``."""
        return self.admission.handling()

    def memory_budget_mb(self) -> float | None:
        """What one job or batch may use: the config's budget, or less where the engines announce less."""
        budgets = [budget for budget in (self.configured_budget_mb, self.work.memory_budget_mb()) if budget]
        return min(budgets, default=None)

    async def accept(self, job: Job, content: Picture, *styles: Image.Image,
                     init: Image.Image | None = None) -> ActiveJob:
        """Store a new job (a checked request) and its inputs: the content (a picture, or an animation's frames),
        one to ``MAX_STYLES`` styles and, for an upscale, the image it starts from. It counts against the limits
        from here on and waits for the engine once passed to :meth:`enqueue`."""
        content, kept_styles = kept_inputs(job.options, content, styles)
        job.frames = content.frame_count if isinstance(content, Animation) else 1
        if job.frames > 1:
            self._check_animation(job, content.size, [style.size for style in kept_styles])
        kept_init = _fit(init, job.options.size) if init is not None else None
        sizes = [content.size] * job.frames + [image.size for image in kept_styles]
        sizes += [kept_init.size] if kept_init is not None else []
        self.disk.make_room(sum(estimate_png_bytes(*size) for size in sizes))
        try:
            await asyncio.to_thread(self._save_inputs, job.id, content, kept_styles, kept_init)
            self.store.add(job)
        except (OSError, sqlite3.Error) as error:  # operational: one line for the admins, a reply for the user
            log.warning("could not save job %s for user %s: %s", job.id, job.user_id, error)
            await asyncio.to_thread(shutil.rmtree, self.store.job_dir(job.id), ignore_errors=True)  # no row: no folder
            raise UserError(DISK_TROUBLE) from None
        active = ActiveJob(job)
        self.lineup.add(active)
        return active

    def _check_animation(self, job: Job, size: tuple[int, int], style_sizes: list[tuple[int, int]]) -> None:
        """Refuse an animation whose predicted peak memory is over the engines' budget, or whose predicted time
        (once the engine's speed is known) is over the job time limit: it would only be stopped part-way."""
        device = engine_kind(self.device)
        cost = animation_cost(job.options, size, job.frames, style_sizes, device=device)
        budget = self.memory_budget_mb()
        smaller = "use a shorter animation, or a lower quality"
        if budget is not None and cost.peak_mb > budget:
            raise UserError(f"This animation ({job.frames} frames) could need about {cost.peak_mb / 1024:.1f} GB of "
                            f"memory, more than the image engine may use ({budget / 1024:.1f} GB); {smaller}.")
        seconds = self.lineup.speed.estimate(cost.work)
        if seconds is not None and seconds > self.job_timeout:
            raise UserError(f"This animation ({job.frames} frames) would take about {format_seconds(seconds)}, over "
                            f"this bot's time limit of {format_seconds(self.job_timeout)} a job; {smaller}.")

    def _save_inputs(self, job_id: str, content: Picture, styles: list[Image.Image],
                     init: Image.Image | None) -> None:
        self.store.save_inputs(job_id, content, *styles, init=init)
        self.store.make_inputs_durable(job_id)  # on disk before the row that points at them

    def enqueue(self, active: ActiveJob) -> int:
        """Let the dispatcher take the job; its position in the queue."""
        position = self.lineup.enqueue(active.id)
        log.info("job %s queued for user %s at position %d", active.id, active.job.user_id, position)
        self._wake()
        return position

    async def cancel(self, job_id: str, by: str) -> str:
        """Cancel a queued job at once, or ask a running one to stop (it concludes when the engine says so)."""
        active = self.lineup.jobs.get(job_id)
        if active is None:
            return NOT_ACTIVE
        if active.job.state == QUEUED:
            assert self.dispatcher is not None
            self.dispatcher.finish(active, CANCELLED, f"Cancelled by {by} while queued.")
            return CANCELLED_QUEUED
        active.stopping_by = by
        await self.work.cancel(job_id)
        return STOPPING

    def note_status_message(self, job: Job, message_id: int | None) -> None:
        if job.status_message_id != message_id:
            job.status_message_id = message_id
            try:
                self.store.save(job, "status_message_id")
            except sqlite3.Error as error:  # only a restart needs it; the job goes on
                log.warning("could not record job %s's status message: %s", job.id, error)

    # ---------------------------------------------------------------------------------------------- views

    def find(self, job_id: str) -> Job | None:
        """An active job, or a finished one from the store."""
        active = self.lineup.jobs.get(job_id)
        return active.job if active else self.store.get(job_id)

    def active_jobs(self) -> list[ActiveJob]:
        return self.lineup.ordered()

    def position(self, job_id: str) -> int:
        return self.lineup.position(job_id)

    def eta_until_start(self, job_id: str) -> float | None:
        return self.lineup.eta_until_start(job_id)

    def _wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wakeup.set()
