"""``/styles`` (the gallery) and ``/preset add|remove`` (Manage Server). Each server sees the configured presets
plus its own; ``/preset`` only ever changes the server it is used in."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserError
from bot.face.delivery import defer_privately, image_file
from bot.face.replies import fit, warn
from bot.face.views import page_view
from bot.intake.download import fetch_image
from bot.intake.presets import PresetError, PresetLibrary
from bot.jobs.disk import estimate_png_bytes


class PresetsCog(commands.Cog, name="Presets"):
    preset = app_commands.Group(name="preset", description="Manage the preset styles",
                                default_permissions=discord.Permissions(manage_guild=True), guild_only=True)

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.library: PresetLibrary = bot.presets
        self.session: aiohttp.ClientSession | None = None

    async def cog_load(self) -> None:
        self.session = aiohttp.ClientSession()

    async def cog_unload(self) -> None:
        if self.session is not None:
            await self.session.close()

    @app_commands.command(name="styles", description="Show the preset styles")
    async def styles(self, interaction: discord.Interaction) -> None:
        if not self.library.all(interaction.guild_id):
            return await interaction.response.send_message("No preset styles are set up yet.", ephemeral=True)
        await interaction.response.defer(thinking=True)
        text, sheet, view = await self.styles_page(interaction.guild_id, 0)
        await interaction.followup.send(text, file=sheet, view=view or discord.utils.MISSING)

    async def turn_page(self, interaction: discord.Interaction, page: int) -> None:
        """A press of ◀ or ▶ under the gallery: the message shows that page instead."""
        text, sheet, view = await self.styles_page(interaction.guild_id, page)
        await interaction.response.edit_message(content=text, attachments=[sheet], view=view)

    async def styles_page(self, guild_id: int | None,
                          page: int) -> tuple[str, discord.File, discord.ui.View | None]:
        """One page of the gallery: its presets' names, their contact sheet and the buttons to the others
        (none when everything fits one page). A page past the end (presets removed since) shows the last."""
        pages = self.library.pages(guild_id)
        page = max(0, min(page, len(pages) - 1))
        presets = pages[page]
        sheet = await asyncio.to_thread(self.library.gallery_png, presets)
        shared = ", ".join(f"`{p.name}`" for p in presets if not p.custom)
        own = ", ".join(f"`{p.name}`" for p in presets if p.custom)
        where = f" (page {page + 1} of {len(pages)})" if len(pages) > 1 else ""
        text = f"**Preset styles**{where} — use one with `/stylize preset:`" + (f"\n{shared}" if shared else "")
        if own:
            text += f"\n**Added on this server:** {own}"
        return fit(text), image_file(sheet, "styles.png"), page_view(page, len(pages)) if len(pages) > 1 else None

    @preset.command(name="add", description="Add a preset style from an image")
    @app_commands.describe(name="short name: letters, digits and dashes", image="the style image",
                           title="a longer title shown in lists (optional)")
    async def add(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 32],
                  image: discord.Attachment, title: app_commands.Range[str, 0, 80] | None = None) -> None:
        if not await defer_privately(interaction):
            return
        if not _may_manage(interaction):
            return await warn(interaction, "Only members with Manage Server can add presets.")
        try:
            assert self.session is not None
            picture = await fetch_image(self.session, image, self.bot.config, "preset image",
                                        requester=interaction.user.id)
            self.bot.core.disk.make_room(estimate_png_bytes(*picture.size))
            preset = await asyncio.to_thread(self.library.add, name, title or name, picture,
                                             guild_id=interaction.guild_id)
        except UserError as error:
            return await warn(interaction, str(error))
        await interaction.edit_original_response(content=f"✅ Added preset `{preset.name}` ({preset.title}).")

    @preset.command(name="remove", description="Remove a preset style added with /preset add")
    @app_commands.describe(name="the preset's name")
    async def remove(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 32]) -> None:
        if not _may_manage(interaction):
            return await interaction.response.send_message("Only members with Manage Server can remove presets.",
                                                           ephemeral=True)
        try:
            preset = await asyncio.to_thread(self.library.remove, name, guild_id=interaction.guild_id)
        except PresetError as error:
            return await warn(interaction, str(error))
        await interaction.response.send_message(f"🗑️ Removed preset `{preset.name}`.", ephemeral=True)

    @remove.autocomplete("name")
    async def removable(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=p.label[:100], value=p.name)
                for p in self.library.search(current, interaction.guild_id, added_only=True)]


def _may_manage(interaction: discord.Interaction) -> bool:
    """Discord hides the group from others by default, but server admins can change that; check again."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild



async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(PresetsCog(bot))
