"""What the buttons do: Cancel on a status message; Weaker / Stronger / Re-roll / Info / Delete on a result.

A button's custom id only names a job; what the presser may do is decided from the job as stored — its server,
its channel, its requester — never from where the press came from. Every result button works only in the job's
own channel (a re-run is posted there), and in direct messages only while the bot allows them. Cancel and
Delete: the requester, or a member with Manage Server in the job's own server. The re-runs (Weaker, Stronger,
Re-roll): anyone who can see the result; each is a new request: the same validation, the current caps and the
same limits as ``/stylize``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import discord

from nst_engine.options import option_spec

from .config import Config
from .delivery import DISCORD_TROUBLE, defer_privately
from .errors import UserError
from .intake import build_options
from .jobs.core import CANCELLED_QUEUED, NOT_ACTIVE, JobCore
from .jobs.model import Job, new_job_id
from .jobs.settings import ServerSettings
from .presenter import DiscordPresenter
from .replies import fit, warn
from .result_info import result_info
from .status import final_status, stopping

log = logging.getLogger(__name__)

NOT_YOURS = "Only the person who asked for this image, or a member with Manage Server, can cancel it."
NOT_YOURS_TO_DELETE = "Only the person who asked for this image, or a member with Manage Server, can delete it."
ELSEWHERE = "These buttons work only in the channel where the image was made."
SERVERS_ONLY = "This bot works in servers only; please use /stylize in a server channel."


def may_remove(interaction: discord.Interaction, job: Job) -> bool:
    if interaction.user.id == job.user_id:
        return True
    in_jobs_server = job.guild_id is not None and interaction.guild_id == job.guild_id
    return in_jobs_server and interaction.permissions.manage_guild


class ButtonHandlers:
    def __init__(self, config: Config, core: JobCore, presenter: DiscordPresenter, settings: ServerSettings) -> None:
        self.config, self.core, self.presenter, self.settings = config, core, presenter, settings

    async def on_result(self, interaction: discord.Interaction, job_id: str, way: str) -> None:
        """A press of one of a result's buttons (``way``: the end of its custom id)."""
        if way in RERUNS:
            return await self.again(interaction, job_id, way)
        job = self.core.find(job_id)
        try:
            if job is None:
                raise UserError("This image is no longer known to the bot.")
            self._check_place(interaction, job)
            if way == "info":
                return await interaction.response.send_message(fit(result_info(job)), ephemeral=True)
            await self.delete(interaction, job)
        except UserError as error:
            await warn(interaction, str(error))

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        job = self.core.find(job_id)
        if job is None or not job.active:
            return await interaction.response.send_message("This job has already finished.", ephemeral=True)
        if not may_remove(interaction, job):
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

    async def again(self, interaction: discord.Interaction, job_id: str, way: str) -> None:
        """Weaker / Stronger: the same inputs with the style strength halved or doubled; Re-roll: the same
        inputs and options with the next seed, a different take."""
        if not await defer_privately(interaction):
            return
        try:
            await self._again(interaction, job_id, way)
        except UserError as error:
            await warn(interaction, str(error))

    async def _again(self, interaction: discord.Interaction, job_id: str, way: str) -> None:
        original = self.core.find(job_id)
        if original is None or not self.core.store.inputs_kept(job_id):
            days = self.config.storage.retention_days
            raise UserError(f"The inputs of this image are no longer kept (they are kept {days:g} days); "
                            "please run /stylize again.")
        self._check_place(interaction, original)
        effective = self.settings.settings_for(original.guild_id, original.channel_id)
        factor = RERUNS[way]
        bounds = option_spec("strength")
        strength = min(bounds.high, max(bounds.low, original.options.strength * factor))
        if way != "reroll" and strength == original.options.strength:
            raise UserError(f"The strength is already at its {'maximum' if factor > 1 else 'minimum'} "
                            f"({strength:g}).")
        options, notes = build_options(effective.config, original.quality, size=original.options.size,
                                       strength=strength, preserve_colors=original.options.preserve_colors)
        if way == "reroll":
            options = dataclasses.replace(options, seed=next_seed(original.options.seed))
        user = interaction.user
        with self.core.admit(user.id, effective.limits):
            content, style = await asyncio.to_thread(self.core.store.load_inputs, job_id)
            job = Job(new_job_id(), user.id, user.display_name, original.guild_id, original.channel_id,
                      original.style_label, original.quality, options, notes, parent_id=original.id)
            await self.presenter.submit(interaction, job, content, style)

    async def delete(self, interaction: discord.Interaction, job: Job) -> None:
        """Delete the result message (through the press's own token: no channel permission needed) and its
        file; the job's row stays."""
        if not may_remove(interaction, job):
            raise UserError(NOT_YOURS_TO_DELETE)
        try:
            await interaction.response.defer()  # a button's silent acknowledgement; the message is the original
        except (discord.InteractionResponded, discord.HTTPException):
            return  # the same press delivered twice: already handled
        try:
            await interaction.delete_original_response()
        except DISCORD_TROUBLE as error:
            log.warning("deleting the result of job %s failed: %s", job.id, error)
            return await interaction.followup.send("⚠️ The image could not be deleted; please try again.",
                                                   ephemeral=True)
        await asyncio.to_thread(self.core.store.result_path(job.id).unlink, missing_ok=True)
        log.info("result of job %s deleted by user %s", job.id, interaction.user.id)
        await interaction.followup.send("🗑️ Image deleted.", ephemeral=True)

    def _check_place(self, interaction: discord.Interaction, job: Job) -> None:
        """Result buttons work only where the result was posted, and in direct messages only while allowed."""
        if interaction.channel_id != job.channel_id or interaction.guild_id != job.guild_id:
            raise UserError(ELSEWHERE)
        if job.guild_id is None and not self.config.discord.allow_dms:
            raise UserError(SERVERS_ONLY)


RERUNS = {"stronger": 2.0, "weaker": 0.5, "reroll": 1.0}  # the re-run buttons and their strength factors


def next_seed(seed: int) -> int:
    """The seed of a re-roll: the parent's plus one, wrapping within the allowed range and never 0 (0 means
    "no variation")."""
    return seed % option_spec("seed").high + 1
