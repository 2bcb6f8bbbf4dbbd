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

from nst_engine.errors import ImageError
from nst_engine.images import load_image
from nst_engine.options import option_spec

from ..delivery import defer_privately
from ..intake import RequestError, build_options, fetch_image
from ..presets import PresetLibrary, StylePreset

log = logging.getLogger(__name__)

SIZE, STRENGTH, COLORS = option_spec("size"), option_spec("strength"), option_spec("preserve_colors")
SizeOption = app_commands.Range[int, int(SIZE.low), int(SIZE.high)]
StrengthOption = app_commands.Range[float, STRENGTH.low, STRENGTH.high]
DESCRIPTIONS = {
    "content": "the picture to restyle",
    "style": "an image whose style to apply (or pick a preset)",
    "preset": "a preset style (or upload a style image)",
    "quality": "speed versus detail (sets size and iterations)",
    "size": f"{SIZE.help} (capped by the quality level)",
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
        @app_commands.autocomplete(preset=self.preset_autocomplete)
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
        return [app_commands.Choice(name=p.label[:100], value=p.name) for p in self.presets.search(current)]

    async def stylize(self, interaction: discord.Interaction, content: discord.Attachment,
                      style: discord.Attachment | None, preset: str | None, quality: str | None,
                      size: int | None, strength: float | None, preserve_colors: str | None) -> None:
        if not await defer_privately(interaction):
            return
        user_id = interaction.user.id
        try:
            if interaction.guild_id is None and not self.config.discord.allow_dms:
                raise RequestError("This bot works in servers only; please use /stylize in a server channel.")
            if (style is None) == (preset is None):
                raise RequestError("Give exactly one of `style` (an image) or `preset` (a preset name) — "
                                   "see /styles for the presets.")
            chosen = self.presets.get(preset) if preset else None
            if preset and chosen is None:
                raise RequestError(f"There is no preset called `{discord.utils.escape_markdown(preset[:40])}`; "
                                   "see /styles for the list.")
            options, notes = build_options(self.config, quality, size=size, strength=strength,
                                           preserve_colors=preserve_colors)
            self.bot.jobs.check_limits(user_id)
        except RequestError as error:
            return await interaction.edit_original_response(content=f"⚠️ {error}")
        try:
            assert self.session is not None
            content_image = await fetch_image(self.session, content, self.config, "content image",
                                              requester=user_id)
            if chosen is not None:
                style_image = await _load_preset(chosen)
                label = f"preset *{chosen.title}*"
            else:
                style_image = await fetch_image(self.session, style, self.config, "style image",
                                                requester=user_id)
                label = "your style image"
            await self.bot.jobs.submit(interaction, content=content_image, style=style_image, style_label=label,
                                       quality=(quality or self.config.bot.default_quality).lower(),
                                       options=options.to_dict(), notes=notes)
        except RequestError as error:
            await interaction.edit_original_response(content=f"⚠️ {error}")
        finally:
            self.bot.jobs.release(user_id)


async def _load_preset(preset: StylePreset):
    try:
        return await asyncio.to_thread(load_image, preset.path, what="preset image")
    except ImageError as error:
        log.error("preset %s could not be loaded: %s", preset.name, error)
        raise RequestError(f"The preset `{preset.name}` is not available right now; please pick another.") from None


async def setup(bot) -> None:
    await bot.add_cog(StylizeCog(bot))
