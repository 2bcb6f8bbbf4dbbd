"""Per-server settings that a server's admins change with ``/nst-settings``: defaults for ``/stylize`` (for the
whole server or one channel), the channels the bot answers in, limits tighter than the config's, and whether
results are posted as spoilers.

They live in the job store's SQLite file (table ``server_settings``: one row per value, ``channel_id`` 0 for
the whole server) and are read on every request, so a change applies to the very next one and survives a
restart. Discord-free: the entry points (``/stylize``, the re-run buttons) call :meth:`ServerSettings.settings_for`
and use what it returns; :mod:`bot.face.cogs.settings` is the admins' face.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from nst_engine.options import option_spec

from bot.config import Config, LimitsConfig
from bot.errors import UserError

SERVER_WIDE = 0  # the channel id of a row that holds for the whole server
DEFAULT_NAMES = ("quality", "preset", "preserve_colors")  # per server, or per channel over the server's
LIMIT_NAMES = ("max_size", "max_jobs_per_user", "cooldown_seconds")  # per server, never looser than the config
ANSWERS = "answers"  # per channel: answer there or not; server-wide False: only in the channels allowed
SPOILER = "spoiler"  # per server
MENTIONED_CHANNELS = 10  # the most channels a refusal names


class SettingsError(UserError):
    """A setting that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Defaults:
    """What ``/stylize`` uses for an option the member leaves out (``None``: the config's own default)."""

    quality: str | None = None
    preset: str | None = None
    preserve_colors: str | None = None


@dataclass(frozen=True)
class Stored:
    """Everything one server has stored: its server-wide values and each channel's own."""

    server: dict[str, Any] = field(default_factory=dict)
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)

    def channel(self, channel_id: int | None) -> dict[str, Any]:
        return self.channels.get(channel_id or SERVER_WIDE, {})

    def answered_in(self) -> list[int]:
        """Channels explicitly allowed, in id order."""
        return sorted(channel for channel, values in self.channels.items() if values.get(ANSWERS) is True)

    def closed_in(self) -> list[int]:
        return sorted(channel for channel, values in self.channels.items() if values.get(ANSWERS) is False)


@dataclass(frozen=True)
class Effective:
    """What holds for one request in one place: the defaults to fill in, the limits, and the config with those
    limits in place of its own (what :func:`bot.intake.options.build_options` takes)."""

    defaults: Defaults
    limits: LimitsConfig
    spoiler: bool
    config: Config

    def fill(self, quality: str | None, preset: str | None, preserve_colors: str | None, *,
             style_given: bool) -> tuple[str, str | None, str | None]:
        """The member's quality, preset and colour mode with the defaults put where they left one out; a default
        preset only when they gave neither a style image nor a preset."""
        wanted_preset = preset if (preset or style_given) else self.defaults.preset
        return (quality or self.defaults.quality or self.config.bot.default_quality, wanted_preset,
                preserve_colors or self.defaults.preserve_colors)


def clamp_limits(requested: Mapping[str, float], caps: LimitsConfig) -> tuple[dict[str, float], list[str]]:
    """Server limits brought within the config's caps (a smaller size, fewer jobs, a longer cooldown), and a note
    for each value that had to change."""
    size = option_spec("size")
    bounds = {"max_size": (size.low, caps.max_size), "max_jobs_per_user": (1, caps.max_jobs_per_user),
              "cooldown_seconds": (caps.cooldown_seconds, 86400)}
    clamped, notes = {}, []
    for name, value in requested.items():
        low, high = bounds[name]
        clamped[name] = type(value)(min(high, max(low, value)))
        if clamped[name] != value:
            which = "the bot's cap" if clamped[name] == high else "the bot's minimum"
            notes.append(f"`{name}` {value:g} is beyond {which}; set to {clamped[name]:g}")
    return clamped, notes


class ServerSettings:
    """The settings table of the job store, read and written with small explicit SQL on the bot's event loop
    thread (the store's connection lives there)."""

    def __init__(self, db: sqlite3.Connection, config: Config,
                 preset_exists: Callable[[str, int], bool] = lambda name, guild_id: True) -> None:
        self.db, self.config, self.preset_exists = db, config, preset_exists

    def stored(self, guild_id: int) -> Stored:
        stored = Stored()
        rows = self.db.execute("SELECT channel_id, name, value FROM server_settings WHERE guild_id = ?", (guild_id,))
        for channel_id, name, value in rows:
            target = stored.server if channel_id == SERVER_WIDE else stored.channels.setdefault(channel_id, {})
            target[name] = json.loads(value)
        return stored

    def put(self, guild_id: int, channel_id: int, values: Mapping[str, Any]) -> None:
        """Store values for the server (``channel_id`` :data:`SERVER_WIDE`) or one channel; ``None`` removes one."""
        self._check(guild_id, values)
        with self.db:  # all or nothing
            self.db.execute("BEGIN")
            for name, value in values.items():
                if value is None:
                    self.db.execute("DELETE FROM server_settings WHERE guild_id = ? AND channel_id = ? AND name = ?",
                                    (guild_id, channel_id, name))
                else:
                    self.db.execute("INSERT OR REPLACE INTO server_settings (guild_id, channel_id, name, value) "
                                    "VALUES (?, ?, ?, ?)", (guild_id, channel_id, name, json.dumps(value)))

    def put_limits(self, guild_id: int, requested: Mapping[str, float]) -> list[str]:
        """Store server limits within the config's caps; the notes on what was clamped."""
        clamped, notes = clamp_limits(requested, self.config.limits)
        self.put(guild_id, SERVER_WIDE, clamped)
        return notes

    def answer_everywhere(self, guild_id: int) -> None:
        """Answer in every channel again: the server-wide switch on, every channel's own switch forgotten."""
        self.db.execute("DELETE FROM server_settings WHERE guild_id = ? AND name = ?", (guild_id, ANSWERS))

    def reset(self, guild_id: int, channel_id: int | None = None) -> None:
        """Forget one channel's values, or (``None``) everything the server stored."""
        if channel_id is None:
            self.db.execute("DELETE FROM server_settings WHERE guild_id = ?", (guild_id,))
        else:
            self.db.execute("DELETE FROM server_settings WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id))

    def spoiler(self, guild_id: int | None) -> bool:
        return guild_id is not None and bool(self.stored(guild_id).server.get(SPOILER, False))

    def limits_for(self, guild_id: int | None) -> LimitsConfig:
        """The limits in force in a server (the config's in a direct message), whichever channel asks."""
        return self.config.limits if guild_id is None else self.effective(guild_id, self.stored(guild_id), None).limits

    def settings_for(self, guild_id: int | None, channel_id: int | None) -> Effective:
        """What applies to a request from this channel; raises :class:`UserError` naming where the bot answers
        when the server's admins closed this channel. A direct message gets the config's own values."""
        if guild_id is None:
            return Effective(Defaults(), self.config.limits, False, self.config)
        stored = self.stored(guild_id)
        if not answers(stored, channel_id):
            raise UserError(closed_here(stored))
        return self.effective(guild_id, stored, channel_id)

    def effective(self, guild_id: int, stored: Stored, channel_id: int | None) -> Effective:
        """The values in force in a channel: the channel's over the server's over the config's, each still valid
        (a quality level or preset removed since, or a cap lowered since, no longer counts)."""
        here = stored.channel(channel_id)
        valid = {"quality": lambda name: name in self.config.quality,
                 "preset": lambda name: self.preset_exists(name, guild_id),
                 "preserve_colors": lambda mode: mode in option_spec("preserve_colors").choices}
        chosen = {}
        for name in DEFAULT_NAMES:
            candidates = (here.get(name), stored.server.get(name))
            chosen[name] = next((value for value in candidates if value is not None and valid[name](value)), None)
        limits, _ = clamp_limits({name: stored.server[name] for name in LIMIT_NAMES if name in stored.server},
                                 self.config.limits)
        in_force = replace(self.config.limits, **limits)
        return Effective(Defaults(**chosen), in_force, bool(stored.server.get(SPOILER, False)),
                         replace(self.config, limits=in_force))

    def _check(self, guild_id: int, values: Mapping[str, Any]) -> None:
        quality, preset, colors = (values.get(name) for name in DEFAULT_NAMES)
        if quality is not None and quality not in self.config.quality:
            raise SettingsError(f"Unknown quality `{quality}`; choose one of {', '.join(self.config.quality)}.")
        if preset is not None and not self.preset_exists(preset, guild_id):
            raise SettingsError(f"There is no preset called `{preset[:40]}`; see /styles for the list.")
        if colors is not None and colors not in option_spec("preserve_colors").choices:
            raise SettingsError(f"Unknown colour mode `{colors}`; choose one of "
                                f"{', '.join(option_spec('preserve_colors').choices)}.")


def answers(stored: Stored, channel_id: int | None) -> bool:
    """Whether the bot answers in this channel: its own switch, else the server's (on unless turned off)."""
    return bool(stored.channel(channel_id).get(ANSWERS, stored.server.get(ANSWERS, True)))


def closed_here(stored: Stored) -> str:
    """The refusal in a closed channel, naming the channels the bot does answer in where there is a list."""
    if stored.server.get(ANSWERS, True):
        return "The admins turned the bot off in this channel; please use it in another channel of this server."
    open_channels = stored.answered_in()
    if not open_channels:
        return "The admins turned the bot off in every channel of this server."
    named = ", ".join(f"<#{channel}>" for channel in open_channels[:MENTIONED_CHANNELS])
    more = f" and {len(open_channels) - MENTIONED_CHANNELS} more" if len(open_channels) > MENTIONED_CHANNELS else ""
    return f"The bot works only in {named}{more} on this server; please use it there."
