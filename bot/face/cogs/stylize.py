"""``/stylize``: the command people use. Its number and choice options come from ``StylizeOptions``' specs;
the quality choices come from the config, so the command is built when the cog is created."""

# No ``from __future__ import annotations``: discord.py reads these parameter annotations at runtime.

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Optional

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from PIL import Image

from nst_engine.animation import Animation
from nst_engine.errors import ImageError
from nst_engine.images import load_image
from nst_engine.options import option_spec

from bot.errors import UserError
from bot.face.delivery import defer_privately, too_late
from bot.face.replies import CHOICE_LIMIT, fit, warn
from bot.intake.blends import blend_label, parse_weights, with_blend
from bot.intake.download import fetch_image, fetch_picture
from bot.intake.options import animation_options, build_options
from bot.intake.presets import PresetLibrary, StylePreset
from bot.jobs.admission import Busy
from bot.jobs.core import JobCore
from bot.jobs.model import Job, new_job_id

log = logging.getLogger(__name__)

OUR_FAULT = "Something went wrong on our side while reading your request; please try again."

SIZE, STRENGTH, COLORS = option_spec("size"), option_spec("strength"), option_spec("preserve_colors")
STYLE_SCALE = option_spec("style_scale")
SizeOption = app_commands.Range[int, int(SIZE.low), int(SIZE.high)]
StrengthOption = app_commands.Range[float, STRENGTH.low, STRENGTH.high]
StyleScaleOption = app_commands.Range[float, STYLE_SCALE.low, STYLE_SCALE.high]
SUGGESTED_SIZES = (128, 192, 256, 384, 512, 640, 768, 1024, 1536, 2048)
DESCRIPTIONS = {
    "content": "the picture to restyle",
    "style": "an image whose style to apply (or pick a preset)",
    "preset": "a preset style (or upload a style image)",
    "quality": "speed versus detail (sets size and iterations)",
    "size": f"{SIZE.help}; each quality level has its own largest size (the suggestions show it)",
    "strength": f"{STRENGTH.help}, {STRENGTH.low:g}–{STRENGTH.high:g} (default {STRENGTH.default:g})",
    "preserve_colors": COLORS.help,
    "style2": "a second style image to blend in (or preset2)",
    "preset2": "a second style as a preset (or style2)",
    "style3": "a third style image to blend in (or preset3)",
    "preset3": "a third style as a preset (or style3)",
    "weights": "how much each style counts, in the order given, e.g. 2,1 (default: equal)",
    "style_scale": f"{STYLE_SCALE.help}, {STYLE_SCALE.low:g}–{STYLE_SCALE.high:g} "
                   f"(default {STYLE_SCALE.default:g})",
}
NO_STYLE = "Give exactly one of `style` (an image) or `preset` (a preset name) — see /styles for the presets."


@dataclass(frozen=True)
class StyleSlot:
    """One style of a request, as given: an upload or a preset name (one of them), and its 1-based place."""

    place: int
    upload: Optional[discord.Attachment]
    preset: Optional[str]

    @property
    def names(self) -> tuple[str, str]:
        suffix = "" if self.place == 1 else str(self.place)
        return f"style{suffix}", f"preset{suffix}"


class StylizeCog(commands.Cog, name="Stylize"):
    def __init__(self, bot) -> None:
        self.bot = bot
        self.config = bot.config
        self.presets: PresetLibrary = bot.presets
        self.session: aiohttp.ClientSession | None = None
        self.command = self._build_command()

    async def cog_load(self) -> None:
        self.session = aiohttp.ClientSession()
        self.bot.tree.add_command(self.command)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.command.name)
        if self.session is not None:
            await self.session.close()

    def _build_command(self) -> app_commands.Command:
        quality_choices = [app_commands.Choice(name=fit(f"{level.name} — {level.description}", CHOICE_LIMIT),
                                               value=level.name)
                           for level in self.config.quality.values()][:25]
        color_choices = [app_commands.Choice(name=choice, value=choice) for choice in COLORS.choices]

        @app_commands.describe(**DESCRIPTIONS)
        @app_commands.choices(quality=quality_choices, preserve_colors=color_choices)
        @app_commands.autocomplete(preset=self.preset_autocomplete, preset2=self.preset_autocomplete,
                                   preset3=self.preset_autocomplete, size=self.size_autocomplete)
        async def stylize(interaction: discord.Interaction, content: discord.Attachment,
                          style: Optional[discord.Attachment] = None, preset: Optional[str] = None,
                          quality: Optional[str] = None, size: Optional[SizeOption] = None,
                          strength: Optional[StrengthOption] = None,
                          preserve_colors: Optional[str] = None,
                          style2: Optional[discord.Attachment] = None, preset2: Optional[str] = None,
                          style3: Optional[discord.Attachment] = None, preset3: Optional[str] = None,
                          weights: Optional[str] = None, style_scale: Optional[StyleScaleOption] = None) -> None:
            slots = [StyleSlot(1, style, preset), StyleSlot(2, style2, preset2), StyleSlot(3, style3, preset3)]
            await self.stylize(interaction, content, slots, quality, size, strength, preserve_colors,
                               weights, style_scale)

        return app_commands.Command(name="stylize", description="Repaint an image in the style of another",
                                    callback=stylize)

    async def preset_autocomplete(self, interaction: discord.Interaction,
                                  current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=fit(p.label, CHOICE_LIMIT), value=p.name)
                for p in self.presets.search(current, interaction.guild_id)]

    async def size_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        """Sizes the chosen quality level really allows, largest first, so nobody picks a size that is then capped."""
        name = str(getattr(interaction.namespace, "quality", None) or self.config.bot.default_quality).lower()
        level = self.config.quality.get(name) or self.config.quality[self.config.bot.default_quality]
        largest = min(level.size, self.bot.settings.limits_for(interaction.guild_id).max_size)  # the server's cap
        typed = "".join(ch for ch in str(current or "") if ch.isdigit())[:5]
        sizes = sorted({largest, *(size for size in SUGGESTED_SIZES if size < largest)}, reverse=True)
        choices = [app_commands.Choice(name=fit(f"{size} px" + (f" (the most for {level.name})" if size == largest
                                                                else ""), CHOICE_LIMIT), value=size)
                   for size in sizes if size >= SIZE.low and str(size).startswith(typed)]
        if typed and int(typed) > largest:
            choices.insert(0, app_commands.Choice(name=fit(f"{largest} px ({typed} px is over {level.name}'s "
                                                           f"{largest} px; pick another quality for more)",
                                                           CHOICE_LIMIT), value=largest))
        return choices[:25]

    async def stylize(self, interaction: discord.Interaction, content: discord.Attachment,
                      slots: list[StyleSlot], quality: str | None, size: int | None, strength: float | None,
                      preserve_colors: str | None, weights: str | None = None,
                      style_scale: float | None = None) -> None:
        await within_capacity(self.bot.core, interaction, "/stylize", lambda: self._stylize(
            interaction, content, slots, quality, size, strength, preserve_colors, weights, style_scale))

    async def _stylize(self, interaction: discord.Interaction, content: discord.Attachment,
                       slots: list[StyleSlot], quality: str | None, size: int | None, strength: float | None,
                       preserve_colors: str | None, weights: str | None, style_scale: float | None) -> None:
        if not await defer_privately(interaction):
            return
        try:
            if interaction.guild_id is None and not self.config.discord.allow_dms:
                raise UserError("This bot works in servers only; please use /stylize in a server channel.")
            effective = self.bot.settings.settings_for(interaction.guild_id, interaction.channel_id)
            style_given = any(slot.upload is not None or slot.preset is not None for slot in slots)
            quality, preset, preserve_colors = effective.fill(quality, slots[0].preset, preserve_colors,
                                                              style_given=style_given)
            given = self._check_slots([replace(slots[0], preset=preset), *slots[1:]], interaction.guild_id)
            blend = parse_weights(weights, len(given))
            options, notes = build_options(effective.config, quality, size=size, strength=strength,
                                           preserve_colors=preserve_colors)
            options = with_blend(options, blend, style_scale)
            with self.bot.core.admit(interaction.user.id, effective.limits, options=options,
                                     style_count=len(given)):  # released however this ends
                requester = interaction.user.id
                assert self.session is not None
                caps = effective.limits.animation_caps(quality.lower())  # this level's frames and size
                content_image, cut = await fetch_picture(self.session, content, self.config, "content image", caps,
                                                         requester=requester)
                if isinstance(content_image, Animation):
                    options, capped = animation_options(caps, options)
                    notes = [*notes, *capped, *cut]
                styles = [await self._style(slot, chosen, requester) for slot, chosen in given]
                label = blend_label([label for _, label in styles], blend)
                user = interaction.user
                job = Job(new_job_id(), user.id, user.display_name, interaction.guild_id, interaction.channel_id,
                          label, quality.lower(), options, notes)  # fill() gave the default level
                await self.bot.presenter.submit(interaction, job, content_image, *(image for image, _ in styles))
        except UserError as error:
            await warn(interaction, str(error))
        except Exception:  # a bug: the traceback for the admins, a clear answer for the requester
            log.exception("/stylize from user %s failed", interaction.user.id)
            await warn(interaction, OUR_FAULT)

    def _check_slots(self, slots: list[StyleSlot],
                     guild_id: int | None) -> list[tuple[StyleSlot, StylePreset | None]]:
        """The styles given, in order, each with its preset looked up; refuses an empty or doubly filled slot."""
        if (slots[0].upload is None) == (slots[0].preset is None):
            raise UserError(NO_STYLE)
        given = []
        for slot in slots:
            upload_name, preset_name = slot.names
            if slot.upload is not None and slot.preset is not None:
                raise UserError(f"Give `{upload_name}` or `{preset_name}`, not both.")
            if slot.upload is None and slot.preset is None:
                continue
            chosen = self.presets.get(slot.preset, guild_id) if slot.preset else None
            if slot.preset and chosen is None:
                raise UserError(f"There is no preset called `{discord.utils.escape_markdown(slot.preset[:40])}`; "
                                "see /styles for the list.")
            given.append((slot, chosen))
        return given

    async def _style(self, slot: StyleSlot, preset: StylePreset | None,
                     requester: int) -> tuple[Image.Image, str]:
        """One style's image (downloaded and decoded in the pool, or the preset's) and how to name it."""
        if preset is not None:
            return await load_preset(preset), f"preset *{preset.title}*"
        assert self.session is not None and slot.upload is not None
        what = "style image" if slot.place == 1 else f"style image {slot.place}"
        return await fetch_image(self.session, slot.upload, self.config, what, requester=requester), f"your {what}"


async def within_capacity(core: JobCore, interaction: discord.Interaction, what: str,
                          handle: Callable[[], Awaitable[None]]) -> None:
    """Handle a request that may start a job (``/stylize``, the Stylize image menu's preset, a re-run button, an
    Edit form) counted against ``[limits] max_in_flight`` from its arrival: past it, the busy reply is its first and
    only answer, at once, instead of one after Discord's 3 seconds."""
    try:
        with core.handling():
            await handle()
    except Busy as busy:
        log.warning("busy: answered %s from user %s with %s", what, interaction.user.id, busy)
        await answer_busy(interaction, str(busy))


async def answer_busy(interaction: discord.Interaction, text: str) -> None:
    """The busy refusal as the interaction's first answer (or an edit, when a menu answered it before)."""
    try:
        await warn(interaction, text)
    except discord.HTTPException as error:
        if not too_late(interaction, error):
            log.warning("could not tell user %s the bot is busy: HTTP %s", interaction.user.id, error.status)


async def load_preset(preset: StylePreset) -> Image.Image:
    try:
        return await asyncio.to_thread(load_image, preset.path, what="preset image")
    except ImageError as error:
        log.error("preset %s could not be loaded: %s", preset.name, error)
        raise UserError(f"The preset `{preset.name}` is not available right now; please pick another.") from None


async def setup(bot) -> None:
    await bot.add_cog(StylizeCog(bot))
