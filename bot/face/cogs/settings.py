"""``/nst-settings`` (Manage Server): a server's own defaults for ``/stylize``, the channels the bot answers in,
limits within the config's caps and spoiler-marked results. Every reply shows the values now in force; they
are kept by :mod:`bot.jobs.settings` and apply to the next request."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict
from typing import Any, Callable

import discord
from discord import app_commands
from discord.ext import commands

from nst_engine.options import option_spec

from bot.config import LimitsConfig
from bot.face.replies import fit, warn
from bot.jobs.settings import ANSWERS, DEFAULT_NAMES, LIMIT_NAMES, SERVER_WIDE, SPOILER, Effective, ServerSettings, \
    SettingsError, Stored, answers

log = logging.getLogger(__name__)

NOT_ADMIN = "Only members with Manage Server can see or change the bot's settings."
SERVER_ONLY = "Use /nst-settings in a server: it changes that server's settings."
NOT_SAVED = "The settings could not be saved (the bot's storage failed); the admins can see the log."
SIZE = option_spec("size")
COLOR_CHOICES = [app_commands.Choice(name=mode, value=mode) for mode in option_spec("preserve_colors").choices]
SCOPES = [app_commands.Choice(name="the whole server", value="server"),
          app_commands.Choice(name="this channel only (over the server's)", value="channel")]
CHANNEL_ANSWERS = {
    "here": "answer in this channel",
    "not-here": "do not answer in this channel",
    "only-allowed": "answer only in channels allowed with “here” (this one included)",
    "everywhere": "answer in every channel (forgets the per-channel choices)",
}


class SettingsCog(commands.Cog, name="Settings"):
    group = app_commands.Group(name="nst-settings", description="This server's settings for the bot (Manage Server)",
                               default_permissions=discord.Permissions(manage_guild=True), guild_only=True)

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.settings: ServerSettings = bot.settings

    @group.command(name="show", description="Show this server's settings and what applies in this channel")
    async def show(self, interaction: discord.Interaction) -> None:
        await self._change(interaction, lambda guild_id: None)

    @group.command(name="defaults", description="What /stylize uses when a member leaves an option out")
    @app_commands.describe(scope="for the whole server, or for this channel over the server's", quality="quality level",
                           preset="preset style used when a member gives no style image or preset",
                           preserve_colors="colour mode", clear="forget this scope's defaults first")
    @app_commands.choices(scope=SCOPES, preserve_colors=COLOR_CHOICES)
    async def defaults(self, interaction: discord.Interaction, scope: str = "server", quality: str | None = None,
                       preset: str | None = None, preserve_colors: str | None = None, clear: bool = False) -> None:
        preset = preset.strip().lower() if preset else None
        given = {name: value for name, value in zip(DEFAULT_NAMES, (quality, preset, preserve_colors)) if value}
        if not given and not clear:
            return await warn(interaction, "Give a quality, a preset or a colour mode (or clear:True to forget them).")
        values = {**(dict.fromkeys(DEFAULT_NAMES) if clear else {}), **given}
        where = interaction.channel_id if scope == "channel" else SERVER_WIDE
        await self._change(interaction, lambda guild_id: self.settings.put(guild_id, where, values))

    @defaults.autocomplete("quality")
    async def quality_levels(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        levels = self.bot.config.quality.values()
        return [app_commands.Choice(name=f"{level.name} — {level.description}"[:100], value=level.name)
                for level in levels if level.name.startswith(current.strip().lower())][:25]

    @defaults.autocomplete("preset")
    async def presets(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=p.label[:100], value=p.name)
                for p in self.bot.presets.search(current, interaction.guild_id)]

    @group.command(name="channels", description="Which channels the bot answers in")
    @app_commands.describe(answer="what to do in this channel, or in all of them")
    @app_commands.choices(answer=[app_commands.Choice(name=text, value=key) for key, text in CHANNEL_ANSWERS.items()])
    async def channels(self, interaction: discord.Interaction, answer: str) -> None:
        here = interaction.channel_id

        def change(guild_id: int) -> None:
            if answer == "everywhere":
                self.settings.answer_everywhere(guild_id)
                return
            if answer == "only-allowed":
                self.settings.put(guild_id, SERVER_WIDE, {ANSWERS: False})
            self.settings.put(guild_id, here, {ANSWERS: answer != "not-here"})
        await self._change(interaction, change)

    @group.command(name="limits", description="This server's limits, within the bot's own caps")
    @app_commands.describe(max_size="largest output size in px", max_jobs="jobs one member may have queued or running",
                           cooldown_seconds="seconds between one member's requests",
                           clear="go back to the bot's own limits first")
    async def limits(self, interaction: discord.Interaction,
                     max_size: app_commands.Range[int, int(SIZE.low), int(SIZE.high)] | None = None,
                     max_jobs: app_commands.Range[int, 1, 1000] | None = None,
                     cooldown_seconds: app_commands.Range[float, 0, 86400] | None = None, clear: bool = False) -> None:
        asked = {name: value for name, value in zip(LIMIT_NAMES, (max_size, max_jobs, cooldown_seconds))
                 if value is not None}
        if not asked and not clear:
            return await warn(interaction, "Give max_size, max_jobs or cooldown_seconds (or clear:True).")
        notes: list[str] = []

        def change(guild_id: int) -> None:
            if clear:
                self.settings.put(guild_id, SERVER_WIDE, dict.fromkeys(LIMIT_NAMES))
            notes.extend(self.settings.put_limits(guild_id, asked))
        await self._change(interaction, change, notes)

    @group.command(name="spoiler", description="Post results as spoilers (blurred until clicked)")
    async def spoiler(self, interaction: discord.Interaction, on: bool) -> None:
        await self._change(interaction, lambda guild_id: self.settings.put(guild_id, SERVER_WIDE, {SPOILER: on}))

    @group.command(name="reset", description="Forget this channel's settings, or all of this server's")
    @app_commands.describe(scope="this channel's own values, or everything this server set")
    @app_commands.choices(scope=SCOPES)
    async def reset(self, interaction: discord.Interaction, scope: str) -> None:
        where = interaction.channel_id if scope == "channel" else None
        await self._change(interaction, lambda guild_id: self.settings.reset(guild_id, where))

    async def _change(self, interaction: discord.Interaction, change: Callable[[int], object],
                      notes: list[str] | None = None) -> None:
        """Check who asks (every time: admins can let others see the command), make the change, show the result."""
        if interaction.guild_id is None:
            return await warn(interaction, SERVER_ONLY)
        if not interaction.permissions.manage_guild:
            return await warn(interaction, NOT_ADMIN)
        try:
            change(interaction.guild_id)
        except SettingsError as error:
            return await warn(interaction, str(error))
        except sqlite3.Error as error:
            log.warning("settings of guild %s not saved: %s", interaction.guild_id, error)
            return await warn(interaction, NOT_SAVED)
        stored = self.settings.stored(interaction.guild_id)
        here = self.settings.effective(interaction.guild_id, stored, interaction.channel_id)
        clamped = "".join(f"\n⚠️ {note}" for note in notes or ())
        text = summary(stored, here, interaction.channel_id, self.bot.config.limits)
        await interaction.response.send_message(fit(text + clamped), ephemeral=True)


def summary(stored: Stored, here: Effective, channel_id: int | None, caps: LimitsConfig) -> str:
    """The reply to every /nst-settings command: what the server set and what holds in this channel."""
    def defaults(values: dict[str, Any]) -> str:
        return " · ".join(f"{name} {_code(values.get(name))}" for name in DEFAULT_NAMES)

    in_force = asdict(here.defaults) | {"quality": here.defaults.quality or here.config.bot.default_quality}
    limits = here.limits
    return "\n".join((
        "**Settings of this server** (change them with /nst-settings)",
        "**Defaults** for options a member leaves out of /stylize:",
        f"• whole server: {defaults(stored.server)}",
        f"• this channel: {defaults(stored.channel(channel_id))}",
        f"• in force here: {defaults(in_force)}",
        f"**Channels**: {channels_text(stored)}; in this channel: "
        f"{'answers' if answers(stored, channel_id) else 'does not answer'}",
        f"**Limits** (the bot's own in brackets): size {limits.max_size} px ({caps.max_size}) · jobs per member "
        f"{limits.max_jobs_per_user} ({caps.max_jobs_per_user}) · cooldown {limits.cooldown_seconds:g} s "
        f"(at least {caps.cooldown_seconds:g})",
        f"**Results**: {'posted as spoilers' if here.spoiler else 'shown openly'}",
    ))


def channels_text(stored: Stored) -> str:
    allowed, closed = stored.answered_in(), stored.closed_in()
    if stored.server.get(ANSWERS, True):
        return "the bot answers in every channel" + (f" except {_mentions(closed)}" if closed else "")
    return f"the bot answers only in {_mentions(allowed)}" if allowed else "the bot answers in no channel"


def _mentions(channels: list[int]) -> str:
    return ", ".join(f"<#{channel}>" for channel in channels)


def _code(value: Any) -> str:
    return "—" if value is None else f"`{value}`"


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(SettingsCog(bot))
