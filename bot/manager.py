"""The job queue: admission limits, the dispatcher that feeds the engine process, status messages, delivery.

One dispatcher task takes queued jobs in order and hands them to the engine process — the next job together
with up to ``[engine] batch_size`` - 1 waiting jobs of the same output size and schedule, which the engine
optimises as one batch; progress events come back and a status task edits each job's status message at most
every ``[bot] progress_interval`` seconds.
Every state change is written to the :class:`~bot.jobs.store.JobStore` first, so a restart resumes the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord
from PIL import Image

from nst_engine.images import encode_image
from nst_engine.options import StylizeOptions, option_spec

from .config import Config
from .delivery import DISCORD_TROUBLE, JobMessages, defer_privately
from .engine_process import EngineProcess, JobSpec
from .intake import RequestError
from .jobs.store import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, JobStore, new_job_id
from .terminal import bar, format_seconds
from .views import result_view, status_view

if TYPE_CHECKING:
    from .app import NSTBot

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job whose engine process dies is retried once
DELIVERY_RETRIES = (2.0, 10.0, 30.0)  # seconds to wait before each further try to post a result
ENGINE_START_TIMEOUT = 300.0


class EngineUnavailable(Exception):
    """The engine process could not start (for example, no weights); the message says why."""


@dataclass
class LiveJob:
    """What the bot knows about an active job beyond the store: messages, progress, preview."""

    job: Job
    messages: JobMessages
    iteration: int = 0
    total: int = 0
    eta: float | None = None
    preview: bytes | None = None
    preview_sent: bytes | None = None
    status_sent: str | None = None
    stopping_by: str | None = None
    batch_key: tuple | None = None  # computed once, when the dispatcher first looks for batch companions
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one status-message request at a time


def work_units(options: dict[str, Any]) -> float:
    """A job's cost in pixel-iterations at its output size (the ETA model's unit)."""
    return float(options["size"]) ** 2 * float(options["iterations"])


class JobManager:
    def __init__(self, bot: NSTBot, config: Config, store: JobStore, engine: EngineProcess) -> None:
        self.bot, self.config, self.store, self.engine = bot, config, store, engine
        self.queue: list[str] = []  # ids of queued jobs, in order
        self.live: dict[str, LiveJob] = {}
        self.running: list[str] = []  # ids of the jobs in the engine now (one batch)
        self.reserved: Counter[int] = Counter()  # requests of each user still downloading their images
        self.seconds_per_unit: float | None = None
        self.device = "unknown"
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.resume()
        self.engine.start()
        self._tasks = [asyncio.create_task(self._dispatch_loop(), name="nst-dispatcher"),
                       asyncio.create_task(self._status_loop(), name="nst-status")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.stop()

    def resume(self) -> None:
        """Queue the jobs that were queued or running when the bot last stopped; they report through the channel."""
        for job in self.store.active():
            if job.state == RUNNING:
                job.state = QUEUED
                self.store.save(job, "state")
            self.queue.append(job.id)
            self.live[job.id] = LiveJob(job, JobMessages(self.bot, job.channel_id,
                                                         status_message_id=job.status_message_id))
        if self.queue:
            log.info("resuming %d job(s) from the store", len(self.queue))
            self._wakeup.set()

    # ------------------------------------------------------------------ admission

    def check_limits(self, user_id: int) -> None:
        """Refuse with what was exceeded and when to retry; reserves a slot the caller must release."""
        limits, now = self.config.limits, time.time()
        mine = sum(1 for live in self.live.values() if live.job.user_id == user_id) + self.reserved[user_id]
        if mine >= limits.max_jobs_per_user:
            eta = self.eta_until_free(user_id)
            when = f" — about {format_seconds(eta)}" if eta is not None else ""
            raise RequestError(f"You already have {mine} job(s) queued or running (the limit is "
                               f"{limits.max_jobs_per_user}). Try again when one finishes{when}.")
        if len(self.live) + sum(self.reserved.values()) >= limits.max_queue:
            eta = self.engine_free_in() if self.running else None  # a slot frees when the batch finishes
            when = f"in about {format_seconds(eta)}" if eta is not None else "in a few minutes"
            raise RequestError(f"The queue is full ({limits.max_queue} jobs). Please try again {when}.")
        last = self.store.last_created_by(user_id)
        if last is not None and now - last < limits.cooldown_seconds:
            retry = int(last + limits.cooldown_seconds) + 1
            raise RequestError(f"Please wait {limits.cooldown_seconds:g} s between requests; "
                               f"you can try again <t:{retry}:R>.")
        self.reserved[user_id] += 1

    def release(self, user_id: int) -> None:
        self.reserved[user_id] -= 1
        if self.reserved[user_id] <= 0:
            del self.reserved[user_id]

    # ------------------------------------------------------------------ queue views

    def position(self, job_id: str) -> int:
        """1 for the next job to start; 0 when not queued."""
        return self.queue.index(job_id) + 1 if job_id in self.queue else 0

    def estimate(self, job: Job) -> float | None:
        return self.seconds_per_unit * work_units(job.options) if self.seconds_per_unit else None

    def remaining(self, job_id: str) -> float | None:
        live = self.live.get(job_id)
        if live is None:
            return 0.0
        if live.job.state == RUNNING:
            return live.eta if live.eta is not None else self.estimate(live.job)
        return self.estimate(live.job)

    def engine_free_in(self) -> float | None:
        """Seconds until the running batch has finished (its jobs run side by side)."""
        times = [self.remaining(job_id) for job_id in self.running]
        return None if any(t is None for t in times) else max(times, default=0.0)

    def eta_until_start(self, job_id: str) -> float | None:
        """Seconds until ``job_id`` starts, from the running batch's ETA and estimates of the jobs ahead (taken
        one after another: batching can only make it sooner)."""
        if job_id not in self.queue:  # running, or about to
            return 0.0
        ahead = self.queue[: self.position(job_id) - 1]
        times = [self.engine_free_in(), *(self.remaining(other) for other in ahead)]
        return None if any(t is None for t in times) else sum(times)

    def eta_until_free(self, user_id: int) -> float | None:
        """Seconds until the first of this user's active jobs finishes."""
        ends = []
        for job_id in (live.job.id for live in self.live.values() if live.job.user_id == user_id):
            start, length = self.eta_until_start(job_id), self.remaining(job_id)
            if start is not None and length is not None:
                ends.append(start + length)
        return min(ends, default=None)

    def active_jobs(self) -> list[LiveJob]:
        ordered = self.running + self.queue
        return [self.live[job_id] for job_id in ordered if job_id in self.live]

    # ------------------------------------------------------------------ submitting

    async def submit(self, interaction: discord.Interaction, *, content: Image.Image, style: Image.Image,
                     style_label: str, quality: str, options: dict[str, Any], notes: list[str],
                     parent_id: str | None = None) -> Job:
        """Store the job and its inputs, queue it, and show the requester their position."""
        user = interaction.user
        job = Job(new_job_id(), user.id, user.display_name, interaction.guild_id, interaction.channel_id,
                  style_label, quality, options, notes, parent_id=parent_id)
        directory = self.store.job_dir(job.id)
        await asyncio.to_thread(_save_inputs, directory, content, style,
                                self.store.content_path(job.id), self.store.style_path(job.id))
        self.store.add(job)
        live = LiveJob(job, JobMessages(self.bot, job.channel_id, interaction))
        self.live[job.id] = live
        async with live.lock:  # held until the status message exists, so the dispatcher edits rather than posts
            self.queue.append(job.id)
            self._wakeup.set()
            position = self.position(job.id)
            await interaction.edit_original_response(content=f"✅ Queued at position **{position}**. "
                                                     "Progress is shown in the channel.")
            text = self.render_status(live)
            await live.messages.post_status(text, status_view(job.id))
            live.status_sent = text
        job.status_message_id = live.messages.status_message_id
        self.store.save(job, "status_message_id")
        log.info("job %s queued for user %s at position %d", job.id, job.user_id, position)
        return job

    async def again_pressed(self, interaction: discord.Interaction, job_id: str, factor: float) -> None:
        """Stronger / Weaker: the same inputs with the style strength multiplied by ``factor``."""
        if not await defer_privately(interaction):
            return
        original = self.store.get(job_id)
        if original is None or not self.store.inputs_kept(job_id):
            days = self.config.storage.retention_days
            return await self._refuse(interaction, f"The inputs of this image are no longer kept (they are kept "
                                                   f"{days:g} days); please run /stylize again.")
        spec = option_spec("strength")
        strength = min(spec.high, max(spec.low, original.options["strength"] * factor))
        if strength == original.options["strength"]:
            return await self._refuse(interaction, f"The strength is already at its {'maximum' if factor > 1 else 'minimum'} "
                                                   f"({strength:g}).")
        try:
            self.check_limits(interaction.user.id)
        except RequestError as error:
            return await self._refuse(interaction, str(error))
        try:
            content, style = await asyncio.to_thread(
                lambda: (Image.open(self.store.content_path(job_id)).convert("RGB"),
                         Image.open(self.store.style_path(job_id)).convert("RGB")))
            options = {**original.options, "strength": strength}
            await self.submit(interaction, content=content, style=style, style_label=original.style_label,
                              quality=original.quality, options=options, notes=list(original.notes),
                              parent_id=original.id)
        finally:
            self.release(interaction.user.id)

    @staticmethod
    async def _refuse(interaction: discord.Interaction, message: str) -> None:
        await interaction.edit_original_response(content=f"⚠️ {message}")

    # ------------------------------------------------------------------ cancelling

    async def cancel_pressed(self, interaction: discord.Interaction, job_id: str) -> None:
        live = self.live.get(job_id)
        job = live.job if live else self.store.get(job_id)
        if job is None or not job.active:
            return await interaction.response.send_message("This job has already finished.", ephemeral=True)
        allowed = interaction.user.id == job.user_id or interaction.permissions.manage_guild
        if not allowed:
            return await interaction.response.send_message(
                "Only the person who asked for this image, or a member with Manage Server, can cancel it.",
                ephemeral=True)
        who = interaction.user.display_name
        if job.state == QUEUED:
            self.queue.remove(job_id)
            self.live.pop(job_id, None)
            self._finish(job, CANCELLED, f"Cancelled by {who} while queued.")
            await interaction.response.edit_message(content=self._final_status(job), attachments=[], view=None)
        else:
            assert live is not None
            live.stopping_by = who
            self.engine.cancel(job_id)
            await interaction.response.edit_message(content=f"{self._header(job)}\n🛑 Stopping… (asked by {who})",
                                                    attachments=[], view=None)
            live.status_sent = None
        log.info("job %s cancel requested by user %s", job_id, interaction.user.id)

    # ------------------------------------------------------------------ status messages

    def _header(self, job: Job) -> str:
        options = job.options
        strength = f" · strength {options['strength']:g}" if options["strength"] != 1 else ""
        colors = f" · colours: {options['preserve_colors']}" if options["preserve_colors"] != "none" else ""
        notes = "".join(f"\n-# {note}" for note in job.notes)
        return (f"**{discord.utils.escape_markdown(job.user_name)}** · {job.style_label} · {job.quality} "
                f"({options['size']} px, {options['iterations']} iterations){strength}{colors}{notes}")

    def render_status(self, live: LiveJob) -> str:
        job = live.job
        if job.state == QUEUED:
            eta = self.eta_until_start(job.id)
            starts = f" · starts in about {format_seconds(eta)}" if eta is not None else ""
            return f"{self._header(job)}\n⏳ Queued — position **{self.position(job.id)}**{starts}"
        if live.stopping_by:
            return f"{self._header(job)}\n🛑 Stopping… (asked by {live.stopping_by})"
        total = live.total or job.options["iterations"]
        fraction = live.iteration / total if total else 0
        eta = f" · ETA {format_seconds(live.eta)}" if live.eta is not None else ""
        return (f"{self._header(job)}\n🎨 `{bar(fraction, 16)}` {fraction:4.0%} · iteration "
                f"{live.iteration}/{total}{eta}")

    def _final_status(self, job: Job) -> str:
        icon = {DONE: "✅", FAILED: "❌", CANCELLED: "🛑"}[job.state]
        return f"{self._header(job)}\n{icon} {job.error or 'Done'}"

    async def refresh_status(self, live: LiveJob) -> None:
        async with live.lock:
            if not live.job.active:
                return
            text = self.render_status(live)
            preview = live.preview if live.job.state == RUNNING and not live.stopping_by else None
            if text == live.status_sent and preview == live.preview_sent:
                return
            view = None if live.stopping_by else status_view(live.job.id)
            try:
                await live.messages.edit_status(text, preview=preview, view=view)
                live.status_sent, live.preview_sent = text, preview
                self._note_status_message(live)
            except DISCORD_TROUBLE as error:  # a failed progress edit never fails the job
                log.warning("status edit for job %s failed: %s", live.job.id, _describe(error))

    def _note_status_message(self, live: LiveJob) -> None:
        if live.job.status_message_id != live.messages.status_message_id:
            live.job.status_message_id = live.messages.status_message_id
            self.store.save(live.job, "status_message_id")

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.bot.progress_interval)
            for live in self.active_jobs():
                await self.refresh_status(live)

    # ------------------------------------------------------------------ dispatching

    async def _engine_up(self) -> bool:
        """Wait for the engine process; if it cannot start, stop the bot with the reason (no weights, …)."""
        try:
            await self._wait_for_engine()
            return True
        except EngineUnavailable as error:
            log.error("the engine could not start: %s", error)
            self.bot.exit_message = str(error)
            asyncio.create_task(self.bot.close())  # not awaited here: closing cancels this very task
            return False

    async def _dispatch_loop(self) -> None:
        if not await self._engine_up():
            return
        while True:
            while not self.queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if not self.engine.alive:  # it died while idle (killed, out of memory): start a new one first
                log.warning("the engine process is gone; restarting it")
                await self._restart_engine()
            batch = self._next_batch()
            try:
                await self._run(batch)
            except Exception:  # keep serving whatever one batch does
                log.exception("jobs %s failed in the dispatcher", ", ".join(live.job.id for live in batch))
                for live in batch:
                    if live.job.active:
                        await self._conclude(live, FAILED, "Something went wrong on our side; please try again.")

    def _next_batch(self) -> list[LiveJob]:
        """The next job, and waiting jobs that can share its batch: same :meth:`StylizeOptions.batch_key`, not
        yet made, never run before (a retried job runs alone, in case the batch was what failed)."""
        head = self.live[self.queue.pop(0)]
        batch = [head]
        if self.config.engine.batch_size <= 1 or not self._batchable(head):
            return batch
        key = self._batch_key(head)
        for job_id in list(self.queue):
            if len(batch) >= self.config.engine.batch_size:
                break
            candidate = self.live[job_id]
            if self._batchable(candidate) and self._batch_key(candidate) == key:
                self.queue.remove(job_id)
                batch.append(candidate)
        return batch

    def _batchable(self, live: LiveJob) -> bool:
        return live.job.attempts == 0 and not self.store.result_path(live.job.id).is_file()

    def _batch_key(self, live: LiveJob) -> tuple:
        if live.batch_key is None:
            with Image.open(self.store.content_path(live.job.id)) as content:  # reads the header only
                live.batch_key = StylizeOptions.from_mapping(live.job.options).batch_key(content.size)
        return live.batch_key

    async def _wait_for_engine(self) -> None:
        deadline = asyncio.get_running_loop().time() + ENGINE_START_TIMEOUT
        while True:
            timeout = deadline - asyncio.get_running_loop().time()
            try:
                event = await asyncio.wait_for(self.engine.events.get(), timeout)
            except asyncio.TimeoutError:
                raise EngineUnavailable("the engine process did not start in time") from None
            if event.get("generation") != self.engine.generation:
                continue
            if event["event"] == "ready":
                self.device = event["device"]
                log.info("engine ready on %s", self.device)
                return
            if event["event"] == "fatal":
                raise EngineUnavailable(event["message"])
            if event["event"] == "exit":
                raise EngineUnavailable(f"the engine process exited (code {event['code']})")

    async def _run(self, batch: list[LiveJob]) -> None:
        head = batch[0]
        if self.store.result_path(head.job.id).is_file():  # made before a restart, perhaps even posted
            return await self._deliver(head, None)  # (such a job is never batched)
        specs = []
        for live in batch:
            job = live.job
            job.state, job.started, job.attempts = RUNNING, time.time(), job.attempts + 1
            self.store.save(job, "state", "started", "attempts")
            live.iteration, live.total, live.eta, live.preview = 0, job.options["iterations"], None, None
            specs.append(JobSpec(job.id, str(self.store.content_path(job.id)), (str(self.store.style_path(job.id)),),
                                 job.options, str(self.store.result_path(job.id))))
        in_engine = {live.job.id: live for live in batch}
        self.running = list(in_engine)
        if len(batch) > 1:
            log.info("jobs %s run as one batch", ", ".join(in_engine))
        self.engine.run(specs)
        for live in batch:
            await self.refresh_status(live)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.engine.job_timeout * len(batch)
        timed_out = False
        try:
            while in_engine:
                try:
                    event = await asyncio.wait_for(self.engine.events.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    log.warning("jobs %s passed the time limit; stopping the engine process", ", ".join(in_engine))
                    timed_out = True
                    deadline = loop.time() + 3600
                    self.engine.kill()
                    continue
                if event.get("generation") != self.engine.generation:
                    continue
                if event["event"] == "exit":
                    return await self._engine_died(list(in_engine.values()), event["code"], timed_out)
                live = in_engine.get(event.get("job"))
                if live is not None and await self._handle(live, event):
                    del in_engine[live.job.id]
                    self.running.remove(live.job.id)
        finally:
            self.running = []

    async def _handle(self, live: LiveJob, event: dict[str, Any]) -> bool:
        """Apply one engine event to a running job; True when the job has left the engine."""
        job, kind = live.job, event["event"]
        if kind == "progress":
            live.iteration, live.total, live.eta = event["iteration"], event["total"], event["eta"]
            live.preview = event["preview"] or live.preview
            return False
        if kind == "done":
            job.iterations_done = event["iterations"]
            if event["cancelled"]:
                await self._conclude(live, CANCELLED, f"Cancelled by {live.stopping_by or 'an admin'} after "
                                                      f"{event['iterations']}/{live.total} iterations.")
            else:
                self._learn_speed(job, event["elapsed"] / event.get("batch_size", 1))
                await self._deliver(live, event["elapsed"])
            return True
        if kind == "failed":
            await self._conclude(live, FAILED, event["message"])
            return True
        return False

    async def _engine_died(self, batch: list[LiveJob], code: int | None, timed_out: bool) -> None:
        """The engine process exited with ``batch`` still in it: restart it, retry each job once (alone)."""
        await self._restart_engine()
        retried = []
        for live in batch:
            job = live.job
            if live.stopping_by:
                await self._conclude(live, CANCELLED, f"Cancelled by {live.stopping_by}.")
            elif timed_out:
                limit = format_seconds(self.config.engine.job_timeout)
                await self._conclude(live, FAILED, f"This image took longer than the time limit ({limit}) "
                                                   "and was stopped; try a lower quality or size.")
            elif job.attempts < MAX_ATTEMPTS:
                log.warning("engine process died during job %s (code %s); retrying it", job.id, code)
                job.state = QUEUED
                self.store.save(job, "state")
                retried.append(job.id)
            else:
                await self._conclude(live, FAILED, "The engine stopped unexpectedly while working on this image; "
                                                   "please try again with a smaller size.")
        self.queue[:0] = retried

    async def _restart_engine(self) -> None:
        self.engine.start()
        await self._engine_up()

    def _learn_speed(self, job: Job, elapsed: float) -> None:
        rate = elapsed / work_units(job.options)
        self.seconds_per_unit = rate if self.seconds_per_unit is None else 0.7 * self.seconds_per_unit + 0.3 * rate

    def _finish(self, job: Job, state: str, message: str) -> None:
        job.state, job.finished, job.error = state, time.time(), message
        self.store.save(job, "state", "finished", "error", "iterations_done", "result_message_id")

    async def _conclude(self, live: LiveJob, state: str, message: str) -> None:
        """Record the outcome and show it in the status message."""
        self.live.pop(live.job.id, None)
        self._finish(live.job, state, message)
        log.info("job %s %s: %s", live.job.id, state, message)
        async with live.lock:
            try:
                await live.messages.edit_status(self._final_status(live.job), view=None)
                self._note_status_message(live)
            except DISCORD_TROUBLE as error:
                log.warning("final status edit for job %s failed: %s", live.job.id, _describe(error))

    async def _deliver(self, live: LiveJob, elapsed: float | None) -> None:
        """Post the result exactly once: look for it first when a try may have reached Discord."""
        job = live.job
        path = self.store.result_path(job.id)
        image = await asyncio.to_thread(lambda: Image.open(path).convert("RGB"))
        limit = await live.messages.upload_limit_bytes()
        # Leave room for the multipart envelope around the file.
        data, extension = await asyncio.to_thread(encode_image, image, limit - min(64 * 1024, limit // 50))
        size_note = "" if extension == "png" else f" · {extension.upper()} (the PNG was over the upload limit)"
        took = f" · {format_seconds(elapsed)}" if elapsed is not None else ""
        text = (f"<@{job.user_id}> here is your image — {job.style_label} · {job.quality} · "
                f"{image.width}×{image.height} · strength {job.options['strength']:g}{took}{size_note}")
        may_exist = elapsed is None  # resumed after a restart: the last run may have posted it
        for wait in (*DELIVERY_RETRIES, None):
            try:
                found = await live.messages.find_result(job.id, job.created) if may_exist else None
                job.result_message_id = found or await live.messages.deliver(
                    text, data, f"stylized-{job.id}.{extension}", job.user_id, result_view(job.id), job.id)
                if found:
                    log.info("job %s was already delivered (message %s); not posting it again", job.id, found)
                return await self._conclude(live, DONE, "Done — the result is below.")
            except DISCORD_TROUBLE as error:
                log.warning("delivering job %s failed: %s", job.id, _describe(error))
                if wait is None or isinstance(error, discord.Forbidden):
                    break
                may_exist = True
                await asyncio.sleep(wait)
        await self._conclude(live, FAILED, "The image was made but could not be posted here "
                                           "(does the bot have permission to send files?).")


def _describe(error: BaseException) -> str:
    if isinstance(error, discord.HTTPException):
        return f"HTTP {error.status} (code {error.code})"
    return type(error).__name__


def _save_inputs(directory: Any, content: Image.Image, style: Image.Image, content_path: Any, style_path: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    content.save(content_path, "PNG")
    style.save(style_path, "PNG")
