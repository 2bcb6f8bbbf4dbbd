"""``/stylize``: the command people use. Its number and choice options come from ``StylizeOptions``' specs;
the quality choices come from the config, so the command is built when the cog is created."""

# No ``from __future__ import annotations``: discord.py reads these parameter annotations at runtime.

import asyncio
import logging
from typing import Optional

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from PIL import Image

from nst_engine.errors import ImageError
from nst_engine.images import load_image
from nst_engine.options import option_spec

from ..delivery import defer_privately
from ..errors import UserError
from ..intake import build_options, fetch_image
from ..jobs.model import Job, new_job_id
from ..presets import PresetLibrary, StylePreset
from ..replies import warn

log = logging.getLogger(__name__)

OUR_FAULT = "Something went wrong on our side while reading your request; please try again."

SIZE, STRENGTH, COLORS = option_spec("size"), option_spec("strength"), option_spec("preserve_colors")
SizeOption = app_commands.Range[int, int(SIZE.low), int(SIZE.high)]
StrengthOption = app_commands.Range[float, STRENGTH.low, STRENGTH.high]
SUGGESTED_SIZES = (128, 192, 256, 384, 512, 640, 768, 1024, 1536, 2048)
DESCRIPTIONS = {
    "content": "the picture to restyle",
    "style": "an image whose style to apply (or pick a preset)",
    "preset": "a preset style (or upload a style image)",
    "quality": "speed versus detail (sets size and iterations)",
    "size": f"{SIZE.help}; each quality level has its own largest size (the suggestions show it)",
    "strength": f"{STRENGTH.help}, {STRENGTH.low:g}–{STRENGTH.high:g} (default {STRENGTH.default:g})",
    "preserve_colors": COLORS.help,
}


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
        quality_choices = [app_commands.Choice(name=f"{level.name} — {level.description}"[:100], value=level.name)
                           for level in self.config.quality.values()][:25]
        color_choices = [app_commands.Choice(name=choice, value=choice) for choice in COLORS.choices]

        @app_commands.describe(**DESCRIPTIONS)
        @app_commands.choices(quality=quality_choices, preserve_colors=color_choices)
        @app_commands.autocomplete(preset=self.preset_autocomplete, size=self.size_autocomplete)
        async def stylize(interaction: discord.Interaction, content: discord.Attachment,
                          style: Optional[discord.Attachment] = None, preset: Optional[str] = None,
                          quality: Optional[str] = None, size: Optional[SizeOption] = None,
                          strength: Optional[StrengthOption] = None,
                          preserve_colors: Optional[str] = None) -> None:
            await self.stylize(interaction, content, style, preset, quality, size, strength, preserve_colors)

        return app_commands.Command(name="stylize", description="Repaint an image in the style of another",
                                    callback=stylize)

    async def preset_autocomplete(self, interaction: discord.Interaction,
                                  current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=p.label[:100], value=p.name)
                for p in self.presets.search(current, interaction.guild_id)]

    async def size_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        """Sizes the chosen quality level really allows, largest first, so nobody picks a size that is then capped."""
        name = str(getattr(interaction.namespace, "quality", None) or self.config.bot.default_quality).lower()
        level = self.config.quality.get(name) or self.config.quality[self.config.bot.default_quality]
        largest = min(level.size, self.config.limits.max_size)
        typed = "".join(ch for ch in str(current or "") if ch.isdigit())[:5]
        sizes = sorted({largest, *(size for size in SUGGESTED_SIZES if size < largest)}, reverse=True)
        choices = [app_commands.Choice(name=f"{size} px" + (f" (the most for {level.name})" if size == largest else ""),
                                       value=size) for size in sizes if size >= SIZE.low and str(size).startswith(typed)]
        if typed and int(typed) > largest:
            choices.insert(0, app_commands.Choice(name=f"{largest} px ({typed} px is over {level.name}'s "
                                                       f"{largest} px; pick another quality for more)", value=largest))
        return choices[:25]

    async def stylize(self, interaction: discord.Interaction, content: discord.Attachment,
                      style: discord.Attachment | None, preset: str | None, quality: str | None,
                      size: int | None, strength: float | None, preserve_colors: str | None) -> None:
        if not await defer_privately(interaction):
            return
        try:
            if interaction.guild_id is None and not self.config.discord.allow_dms:
                raise UserError("This bot works in servers only; please use /stylize in a server channel.")
            effective = self.bot.settings.settings_for(interaction.guild_id, interaction.channel_id)
            quality, preset, preserve_colors = effective.fill(quality, preset, preserve_colors,
                                                              style_given=style is not None)
            if (style is None) == (preset is None):
                raise UserError("Give exactly one of `style` (an image) or `preset` (a preset name) — "
                                "see /styles for the presets.")
            chosen = self.presets.get(preset, interaction.guild_id) if preset else None
            if preset and chosen is None:
                raise UserError(f"There is no preset called `{discord.utils.escape_markdown(preset[:40])}`; "
                                "see /styles for the list.")
            options, notes = build_options(effective.config, quality, size=size, strength=strength,
                                           preserve_colors=preserve_colors)
            with self.bot.core.admit(interaction.user.id, effective.limits):  # released however this ends
                content_image, style_image, label = await self._images(content, style, chosen,
                                                                         interaction.user.id)
                user = interaction.user
                job = Job(new_job_id(), user.id, user.display_name, interaction.guild_id, interaction.channel_id,
                          label, (quality or self.config.bot.default_quality).lower(), options, notes)
                await self.bot.presenter.submit(interaction, job, content_image, style_image)
        except UserError as error:
            await warn(interaction, str(error))
        except Exception:  # a bug: the traceback for the admins, a clear answer for the requester
            log.exception("/stylize from user %s failed", interaction.user.id)
            await warn(interaction, OUR_FAULT)

    async def _images(self, content: discord.Attachment, style: discord.Attachment | None,
                      preset: StylePreset | None, requester: int) -> tuple[Image.Image, Image.Image, str]:
        """The downloaded (or preset) images and how to name the style in messages."""
        assert self.session is not None
        content_image = await fetch_image(self.session, content, self.config, "content image",
                                          requester=requester)
        if preset is not None:
            return content_image, await _load_preset(preset), f"preset *{preset.title}*"
        assert style is not None
        style_image = await fetch_image(self.session, style, self.config, "style image", requester=requester)
        return content_image, style_image, "your style image"


async def _load_preset(preset: StylePreset) -> Image.Image:
    try:
        return await asyncio.to_thread(load_image, preset.path, what="preset image")
    except ImageError as error:
        log.error("preset %s could not be loaded: %s", preset.name, error)
        raise UserError(f"The preset `{preset.name}` is not available right now; please pick another.") from None


async def setup(bot) -> None:
    await bot.add_cog(StylizeCog(bot))
