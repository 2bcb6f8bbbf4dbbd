"""What the buttons do: Cancel on a status message; Weaker / Stronger / Re-roll / Edit / Upscale / Info / Delete
on a result.

A button's custom id only names a job; what the presser may do is decided from the job as stored — its server,
its channel, its requester — never from where the press came from. Every result button works only in the job's
own channel (a re-run is posted there), and in direct messages only while the bot allows them. Cancel and
Delete: the requester, or a member with Manage Server in the job's own server. The re-runs (Weaker, Stronger,
Re-roll, Edit's form, Upscale): anyone who can see the result; each is a new request with the parent's kept
inputs (all its styles, their weights and scale): the same validation, the current caps and the same limits as
``/stylize``, the busy reply past ``[limits] max_in_flight`` included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import discord
from PIL import Image

from nst_engine.animation import Animation
from nst_engine.options import QualityLevel, StylizeOptions, option_spec

from bot.config import Config
from bot.errors import UserError
from bot.face.cogs.stylize import load_preset, within_capacity
from bot.intake.blends import with_blend
from bot.intake.options import build_options, capped_animation
from bot.intake.presets import StylePreset
from bot.jobs.core import CANCELLED_QUEUED, NOT_ACTIVE, JobCore
from bot.jobs.model import DONE, Job, new_job_id
from bot.jobs.settings import Effective, ServerSettings

from .delivery import DISCORD_TROUBLE, defer_privately, too_late
from .edit_form import COLORS, EditValues, edit_form, edited_job_id, submitted_values
from .presenter import DiscordPresenter
from .replies import fit, warn
from .result_info import result_info
from .status import final_status, stopping

log = logging.getLogger(__name__)

NOT_YOURS = "Only the person who asked for this image, or a member with Manage Server, can cancel it."
NOT_YOURS_TO_DELETE = "Only the person who asked for this image, or a member with Manage Server, can delete it."
NOT_THIS_MESSAGE = "This button does not belong to this message, so nothing was deleted."
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
        if way in RERUNS or way == "upscale":
            return await within_capacity(self.core, interaction, f"the {way} button",
                                         lambda: self.again(interaction, job_id, way))
        job = self.core.find(job_id)
        try:
            if job is None:
                raise UserError("This image is no longer known to the bot.")
            self._check_place(interaction, job)
            if way == "edit":
                self._kept_original(job_id)
                return await interaction.response.send_modal(edit_form(job, list(self.config.quality)))
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
        inputs and options with the next seed, a different take; Upscale: the next quality level's size,
        starting from the result; ``edited``: an Edit form's values."""
        if not await defer_privately(interaction):
            return
        try:
            original = self._kept_original(job_id)
            self._check_place(interaction, original)
            if way == "upscale":
                await self._upscale(interaction, original, self._settings_at(original))
            elif way == "edited":
                await self._edited(interaction, original, self._settings_at(original), submitted_values(interaction))
            else:
                await self._again(interaction, original, self._settings_at(original), way)
        except UserError as error:
            await warn(interaction, str(error))

    async def _again(self, interaction: discord.Interaction, original: Job, effective: Effective, way: str) -> None:
        factor = RERUNS[way]
        bounds = option_spec("strength")
        strength = min(bounds.high, max(bounds.low, original.options.strength * factor))
        if way != "reroll" and strength == original.options.strength:
            raise UserError(f"The strength is already at its {'maximum' if factor > 1 else 'minimum'} "
                            f"({strength:g}).")
        options, notes = self._options(original, effective, original.quality, size=original.options.size,
                                       strength=strength)
        if way == "reroll":
            options = dataclasses.replace(options, seed=next_seed(original.options.seed))
        await self._rerun(interaction, original, effective, original.quality, options, notes)

    async def _upscale(self, interaction: discord.Interaction, original: Job, effective: Effective) -> None:
        """A new job at the next quality level's size that starts from this result (sharper, not redone)."""
        if original.animated:
            largest = max(effective.limits.animation_side(level) for level in effective.config.quality.values())
            raise UserError("Upscale works on still images; for a larger animation use Edit with another quality "
                            f"(animations are at most {largest} px).")
        level = upscale_level(effective.config, original)
        result = self.core.store.result_path(original.id)
        if original.state != DONE or not result.is_file():
            raise UserError("This image's result is no longer kept, so it cannot be upscaled.")
        options, notes = self._options(original, effective, level.name)
        init = await asyncio.to_thread(_open_rgb, result)
        await self._rerun(interaction, original, effective, level.name, options, notes, init=init)

    async def on_edit_submit(self, interaction: discord.Interaction) -> None:
        """An Edit form's submit (any interaction is offered; others are left alone): checked like a press of
        the result's buttons, then queued as a re-run with the values changed."""
        job_id = edited_job_id(interaction)
        if job_id is not None:
            await within_capacity(self.core, interaction, "an Edit form",
                                  lambda: self.again(interaction, job_id, "edited"))

    async def _edited(self, interaction: discord.Interaction, original: Job, effective: Effective,
                      values: EditValues) -> None:
        quality = (values.quality or original.quality).lower()
        if values.colours and values.colours.lower() not in COLORS.choices:
            raise UserError(f"Colours must be one of {', '.join(COLORS.choices)}, not `{values.colours[:40]}`.")
        try:
            strength = float(values.strength) if values.strength else original.options.strength
        except ValueError:
            raise UserError(f"Strength must be a number such as `1.5`, not `{values.strength[:40]}`.") from None
        preset = None
        if values.preset:
            preset = interaction.client.presets.get(values.preset, original.guild_id)
            if preset is None:
                raise UserError(f"There is no preset called `{discord.utils.escape_markdown(values.preset[:40])}`; "
                                "see /styles for the list.")
        same_quality = quality == original.quality
        options, notes = self._options(original, effective, quality,
                                       size=original.options.size if same_quality else None,
                                       strength=strength,
                                       preserve_colors=values.colours or original.options.preserve_colors,
                                       single_style=preset is not None)
        if preset is None and options == original.options and same_quality:
            raise UserError("Nothing was changed; edit a value to make a new image.")
        await self._rerun(interaction, original, effective, quality, options, notes, preset=preset)

    def _kept_original(self, job_id: str) -> Job:
        """The job a re-run starts from, when its inputs are still kept."""
        original = self.core.find(job_id)
        if original is None or not self.core.store.inputs_kept(job_id):
            days = self.config.storage.retention_days
            raise UserError(f"The inputs of this image are no longer kept (they are kept {days:g} days); "
                            "please run /stylize again.")
        return original

    def _settings_at(self, original: Job) -> Effective:
        """The server's settings where ``original`` was made; refuses a channel the bot no longer answers in."""
        return self.settings.settings_for(original.guild_id, original.channel_id)

    def _options(self, original: Job, effective: Effective, quality: str, *, size: int | None = None,
                 strength: float | None = None, preserve_colors: str | None = None,
                 single_style: bool = False) -> tuple[StylizeOptions, list[str]]:
        """A re-run's options: validated and capped as ``/stylize`` does under ``effective`` (the settings where
        the parent was made), with the parent's seed and blend (its style weights and scale; none when the re-run
        uses a single preset instead)."""
        parent = original.options
        options, notes = build_options(effective.config, quality, size=size,
                                       strength=parent.strength if strength is None else strength,
                                       preserve_colors=preserve_colors or parent.preserve_colors)
        options = with_blend(options, () if single_style else parent.style_weights, parent.style_scale)
        return dataclasses.replace(options, seed=parent.seed), notes

    async def _rerun(self, interaction: discord.Interaction, original: Job, effective: Effective, quality: str,
                     options: StylizeOptions, notes: list[str], *, preset: StylePreset | None = None,
                     init: Image.Image | None = None) -> None:
        """Queue a child of ``original`` with its kept inputs (or a preset in place of its styles)."""
        user = interaction.user
        style_count = 1 if preset is not None else len(self.core.store.style_paths(original.id))
        with self.core.admit(user.id, effective.limits, options=options, style_count=style_count):
            content, styles = await asyncio.to_thread(self.core.store.load_inputs, original.id)
            if isinstance(content, Animation):  # the same caps as a new animated /stylize at this level
                content, options, capped = capped_animation(effective.limits.animation_caps(quality), content, options)
                notes = [*notes, *capped]
            label = original.style_label
            if preset is not None:
                styles, label = [await load_preset(preset)], f"preset *{preset.title}*"
            job = Job(new_job_id(), user.id, user.display_name, original.guild_id, original.channel_id,
                      label, quality, options, notes, parent_id=original.id)
            await self.presenter.submit(interaction, job, content, *styles, init=init)

    async def delete(self, interaction: discord.Interaction, job: Job) -> None:
        """Delete the result message (through the press's own token: no channel permission needed) and its
        file; the job's row stays."""
        if not may_remove(interaction, job):
            raise UserError(NOT_YOURS_TO_DELETE)
        if interaction.message is None or interaction.message.id != job.result_message_id:
            log.warning("user %s pressed job %s's Delete on message %s, not on its result", interaction.user.id,
                        job.id, interaction.message.id if interaction.message else None)
            raise UserError(NOT_THIS_MESSAGE)  # the custom id came from elsewhere: another member's image
        try:
            await interaction.response.defer()  # a button's silent acknowledgement; the message is the original
        except (discord.InteractionResponded, discord.HTTPException) as error:
            too_late(interaction, error)
            return  # too late, or the same press delivered twice: already handled
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


def upscale_level(config: Config, job: Job) -> QualityLevel:
    """The quality level an Upscale of ``job`` runs at: the next one in the config's order, if it makes a larger
    image under the server's size cap; otherwise the refusal says why."""
    levels = list(config.quality)
    if job.quality not in levels:
        raise UserError(f"The quality level `{job.quality}` is no longer offered, so this image cannot be "
                        "upscaled; please run /stylize again.")
    following = levels[levels.index(job.quality) + 1:]
    if not following:
        raise UserError(f"This image is already at the highest quality level (`{job.quality}`).")
    level, cap = config.quality[following[0]], config.limits.max_size
    if min(level.size, cap) <= job.options.size:
        why = f"this server's largest size is {cap} px" if level.size > cap else f"its size is {level.size} px"
        raise UserError(f"This image ({job.options.size} px) cannot be upscaled: the next quality level, "
                        f"`{level.name}`, is not larger ({why}).")
    return level


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def next_seed(seed: int) -> int:
    """The seed of a re-roll: the parent's plus one, wrapping within the allowed range and never 0 (0 means
    "no variation")."""
    return seed % option_spec("seed").high + 1
