"""What the buttons do: Cancel on a status message, Stronger / Weaker on a result.

A button's custom id only names a job; what the presser may do is decided from the job as stored — its server,
its channel, its requester — never from where the press came from. Cancel: the requester, or a member with
Manage Server in the job's own server. Stronger / Weaker: anyone who can see the result, in the job's own
channel only (the re-run is posted there), and in direct messages only while the bot allows them. A re-run is
a new request: the same validation, the current caps and the same limits as ``/stylize``.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from nst_engine.options import option_spec

from .config import Config
from .delivery import defer_privately
from .errors import UserError
from .intake import build_options
from .jobs.core import CANCELLED_QUEUED, NOT_ACTIVE, JobCore
from .jobs.model import Job, new_job_id
from .presenter import DiscordPresenter
from .replies import warn
from .status import final_status, stopping

log = logging.getLogger(__name__)

NOT_YOURS = "Only the person who asked for this image, or a member with Manage Server, can cancel it."
ELSEWHERE = "These buttons work only in the channel where the image was made."
SERVERS_ONLY = "This bot works in servers only; please use /stylize in a server channel."


def may_cancel(interaction: discord.Interaction, job: Job) -> bool:
    if interaction.user.id == job.user_id:
        return True
    in_jobs_server = job.guild_id is not None and interaction.guild_id == job.guild_id
    return in_jobs_server and interaction.permissions.manage_guild


class ButtonHandlers:
    def __init__(self, config: Config, core: JobCore, presenter: DiscordPresenter) -> None:
        self.config, self.core, self.presenter = config, core, presenter

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        job = self.core.find(job_id)
        if job is None or not job.active:
            return await interaction.response.send_message("This job has already finished.", ephemeral=True)
        if not may_cancel(interaction, job):
            return await warn(interaction, NOT_YOURS)
        who = interaction.user.display_name
        outcome = await self.core.cancel(job_id, who)
        if outcome == NOT_ACTIVE:
            return await interaction.response.send_message("This job has already finished.", ephemeral=True)
        if outcome == CANCELLED_QUEUED:
            self.presenter.forget(job_id)
            await interaction.response.edit_message(content=final_status(job), attachments=[], view=None)
        else:
            await interaction.response.edit_message(content=stopping(job, who), attachments=[], view=None)
            self.presenter.status_replaced(job_id)
        log.info("job %s cancel requested by user %s", job_id, interaction.user.id)

    async def again(self, interaction: discord.Interaction, job_id: str, factor: float) -> None:
        """Stronger / Weaker: the same inputs with the style strength multiplied by ``factor``."""
        if not await defer_privately(interaction):
            return
        try:
            await self._again(interaction, job_id, factor)
        except UserError as error:
            await warn(interaction, str(error))

    async def _again(self, interaction: discord.Interaction, job_id: str, factor: float) -> None:
        original = self.core.find(job_id)
        if original is None or not self.core.store.inputs_kept(job_id):
            days = self.config.storage.retention_days
            raise UserError(f"The inputs of this image are no longer kept (they are kept {days:g} days); "
                            "please run /stylize again.")
        if interaction.channel_id != original.channel_id or interaction.guild_id != original.guild_id:
            raise UserError(ELSEWHERE)
        if original.guild_id is None and not self.config.discord.allow_dms:
            raise UserError(SERVERS_ONLY)
        bounds = option_spec("strength")
        strength = min(bounds.high, max(bounds.low, original.options.strength * factor))
        if strength == original.options.strength:
            raise UserError(f"The strength is already at its {'maximum' if factor > 1 else 'minimum'} "
                            f"({strength:g}).")
        options, notes = build_options(self.config, original.quality, size=original.options.size,
                                       strength=strength, preserve_colors=original.options.preserve_colors)
        user = interaction.user
        with self.core.admit(user.id):
            content, style = await asyncio.to_thread(self.core.store.load_inputs, job_id)
            job = Job(new_job_id(), user.id, user.display_name, original.guild_id, original.channel_id,
                      original.style_label, original.quality, options, notes, parent_id=original.id)
            await self.presenter.submit(interaction, job, content, style)
