"""The Discord face of the job core: each job's status message, kept current, and its result, posted once.

It implements the core's :class:`~bot.jobs.frontend.Frontend`: the core says what happened, this shows it.
Status edits are throttled to one per job every ``[bot] progress_interval`` seconds, and to
:data:`STATUS_EDITS_PER_SECOND` for all jobs together (running jobs first, then the messages updated longest
ago), so a long queue stays under Discord's rate limits; a failed edit never fails a job. The result is posted exactly once, looked for first whenever an earlier try may have reached Discord.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import discord
from PIL import Image

from nst_engine.animated_images import encode_animation, load_animation
from nst_engine.images import encode_image
from nst_engine.recipe import PARAMETERS_KEY, RECIPE_KEY

from bot.jobs.core import JobCore
from bot.jobs.frontend import DeliveryFailed
from bot.jobs.model import RUNNING, ActiveJob, Job
from bot.ops.terminal import format_seconds

from .delivery import DISCORD_TROUBLE, JobMessages
from .status import final_status, live_status
from .views import result_view, status_view

log = logging.getLogger(__name__)

DELIVERY_RETRIES = (2.0, 10.0, 30.0)  # seconds to wait before each further try to post a result
# Status edits per second for all jobs together: under half of Discord's 50 requests/s, so answers to commands
# and results always find room; with a long queue, each queued job's position is then updated less often.
STATUS_EDITS_PER_SECOND = 20
NOT_POSTED = "The image was made but could not be posted here (does the bot have permission to send files?)."


@dataclass
class Track:
    """What the face keeps per active job: where its messages go and what they show now."""

    messages: JobMessages
    status_sent: str | None = None
    preview_sent: bytes | None = None
    posted_before: bool = False  # its result was found already posted (a run before a restart)
    shown_at: float = 0.0  # monotonic time of its last status edit (the status loop serves the oldest first)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one status-message request at a time


class DiscordPresenter:
    def __init__(self, bot: discord.Client, core: JobCore, progress_interval: float) -> None:
        self.bot, self.core, self.progress_interval = bot, core, progress_interval
        self.tracks: dict[str, Track] = {}

    def track(self, job: Job, interaction: discord.Interaction | None = None) -> Track:
        """The job's messages: through the interaction while it lives; a resumed job's through its channel."""
        if job.id not in self.tracks:
            self.tracks[job.id] = self._new_track(job, interaction)
        return self.tracks[job.id]

    def _new_track(self, job: Job, interaction: discord.Interaction | None = None) -> Track:
        return Track(JobMessages(self.bot, job.channel_id, interaction, status_message_id=job.status_message_id))

    def forget(self, job_id: str) -> None:
        """The job ended outside the core's view (cancelled while queued, shown by the button's own reply)."""
        self.tracks.pop(job_id, None)

    def status_replaced(self, job_id: str) -> None:
        """The status message was changed by a button's reply: the next refresh must edit it again."""
        if job_id in self.tracks:
            self.tracks[job_id].status_sent = None

    async def submit(self, interaction: discord.Interaction, job: Job, content: Image.Image,
                     *styles: Image.Image, init: Image.Image | None = None) -> Job:
        """Store the job, queue it, tell the requester its position and post its public status message."""
        active = await self.core.accept(job, content, *styles, init=init)
        track = self.track(active.job, interaction)
        async with track.lock:  # held until the status message exists, so the first update edits it
            position = self.core.enqueue(active)
            await interaction.edit_original_response(content=f"✅ Queued at position **{position}**. "
                                                     "Progress is shown in the channel.")
            text = self._status(active)
            await track.messages.post_status(text, status_view(active.id))
            track.status_sent = text
        self.core.note_status_message(active.job, track.messages.status_message_id)
        return active.job

    def _status(self, active: ActiveJob) -> str:
        return live_status(active, self.core.position(active.id), self.core.eta_until_start(active.id))

    # ----------------------------------------------------------------------------------- status messages

    async def show(self, active: ActiveJob) -> None:
        await self.refresh(active)

    async def refresh(self, active: ActiveJob) -> bool:
        """Edit the job's status message if what it shows changed; whether an edit was sent."""
        track = self.track(active.job)
        async with track.lock:
            if not active.job.active:
                return False
            text = self._status(active)
            preview = active.preview if active.job.state == RUNNING and not active.stopping_by else None
            if text == track.status_sent and preview == track.preview_sent:
                return False
            view = None if active.stopping_by else status_view(active.id)
            track.shown_at = time.monotonic()
            try:
                await track.messages.edit_status(text, preview=preview, view=view)
                track.status_sent, track.preview_sent = text, preview
                self.core.note_status_message(active.job, track.messages.status_message_id)
            except DISCORD_TROUBLE as error:  # a failed progress edit never fails the job
                log.warning("status edit for job %s failed: %s", active.id, describe(error))
            return True

    async def status_loop(self) -> None:
        budget = max(1, round(STATUS_EDITS_PER_SECOND * self.progress_interval))
        while True:
            await asyncio.sleep(self.progress_interval)
            await self.refresh_due(budget)

    async def refresh_due(self, budget: int) -> int:
        """One pass of the status loop: refresh the running jobs' messages, then those updated longest ago, until
        ``budget`` edits were sent; how many were."""
        def due(active: ActiveJob) -> tuple[bool, float]:
            return active.job.state != RUNNING, self.track(active.job).shown_at
        sent = 0
        for active in sorted(self.core.active_jobs(), key=due):
            if sent >= budget:
                break
            try:
                sent += await self.refresh(active)
            except Exception:  # a bug in one job's status must not stop every job's updates
                log.exception("status update for job %s failed", active.id)
        return sent

    async def concluded(self, active: ActiveJob) -> None:
        track = self.tracks.pop(active.id, None) or self._new_track(active.job)
        if track.posted_before:  # said only now that the store records it
            log.info("job %s was already delivered (message %s); not posting it again", active.id,
                     active.job.result_message_id)
        async with track.lock:
            try:
                await track.messages.edit_status(final_status(active.job), view=None)
                self.core.note_status_message(active.job, track.messages.status_message_id)
            except DISCORD_TROUBLE as error:
                log.warning("final status edit for job %s failed: %s", active.id, describe(error))

    # ------------------------------------------------------------------------------------------- results

    async def deliver(self, job: Job, elapsed: float | None, result: str) -> int:
        track = self.track(job)
        messages = track.messages
        limit = await messages.upload_limit_bytes()
        # Leave room for the multipart envelope around the file.
        data, extension, size, size_note = await asyncio.to_thread(encode_result, result,
                                                                   limit - min(64 * 1024, limit // 50))
        took = f" · {format_seconds(elapsed)}" if elapsed is not None else ""
        text = (f"<@{job.user_id}> here is your image — {job.style_label} · {job.quality} · "
                f"{size[0]}×{size[1]} · strength {job.options.strength:g}{took}{size_note}"
                f"{self.came_from(job)}")
        spoiler = "SPOILER_" if self.bot.settings.spoiler(job.guild_id) else ""  # the server's choice of now
        filename = f"{spoiler}stylized-{job.id}.{extension}"
        may_exist = elapsed is None  # resumed after a restart: the last run may have posted it
        for wait in (*DELIVERY_RETRIES, None):
            try:
                found = await messages.find_result(job.id, job.created) if may_exist else None
                if found:
                    track.posted_before = True
                    return found
                return await messages.deliver(text, data, filename, job.user_id,
                                              result_view(job.id), job.id)
            except DISCORD_TROUBLE as error:
                log.warning("delivering job %s failed: %s", job.id, describe(error))
                if wait is None or isinstance(error, discord.Forbidden):
                    break
                may_exist = True
                await asyncio.sleep(wait)
        raise DeliveryFailed(NOT_POSTED)

    def came_from(self, job: Job) -> str:
        """A re-run's (Re-roll, Stronger, Edit, Upscale) link to the result it was made from, when that is known."""
        parent = self.core.store.get(job.parent_id) if job.parent_id else None
        if parent is None or parent.result_message_id is None:
            return ""
        link = jump_url(parent.guild_id, parent.channel_id, parent.result_message_id)
        return f" · from [image `{parent.id}`]({link})"


def encode_result(path: str, max_bytes: int) -> tuple[bytes, str, tuple[int, int], str]:
    """The result as a file of at most ``max_bytes`` with the recipe the engine wrote into it: a PNG (a JPEG
    or WebP when that is over), or for an animation a GIF or animated WebP, shrunk to fit; with its extension, its
    size and a note for the message when it had to give something up."""
    with Image.open(path) as image:
        recipe = {key: image.info[key] for key in (RECIPE_KEY, PARAMETERS_KEY) if key in image.info}
        animated = getattr(image, "is_animated", False)
        still = None if animated else image.convert("RGB")
    if still is not None:
        data, extension = encode_image(still, max_bytes, recipe)
        return data, extension, still.size, "" if extension == "png" else \
            f" · {extension.upper()} (the PNG was over the upload limit)"
    encoded = encode_animation(load_animation(path, what="result"), max_bytes=max_bytes, text=recipe)
    cut = encoded.reductions()
    note = f" · {encoded.frames} frames" + (f" ({' and '.join(cut)} to fit the upload limit)" if cut else "")
    return encoded.data, encoded.extension, encoded.size, note


def jump_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """Discord's link to a message (``@me`` for direct messages)."""
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def describe(error: BaseException) -> str:
    if isinstance(error, discord.HTTPException):
        return f"HTTP {error.status} (code {error.code})"
    return type(error).__name__
