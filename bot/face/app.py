"""The Discord bot process: a discord.py ``commands.Bot`` that wires the face (cogs, buttons, presenter) to the
job core (:mod:`bot.jobs`) and the work queue that runs the engine (:mod:`bot.work.local`).

This process never imports torch; the engine runs in its own process, so the gateway heartbeat and every
command stay responsive while a job runs. See docs/architecture.md for how the pieces fit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from nst_engine.download import network_reason
from nst_engine.errors import NSTError

from bot.config import Config, ConfigError, discord_token
from bot.intake.decoder import close_shared_pool, shared_pool
from bot.intake.presets import PresetLibrary
from bot.jobs.core import JobCore
from bot.jobs.disk import MB, DiskBudget, tidy
from bot.jobs.settings import ServerSettings
from bot.jobs.store import JobStore
from bot.logs import configure_logging
from bot.ops.health import heartbeat_loop, heartbeat_path
from bot.ops.metrics import Metrics
from bot.work.instant import InstantWorkQueue
from bot.work.local import LocalWorkQueue
from bot.work.queue import WorkQueue
from bot.work.redis_queue import RedisWorkQueue

from .buttons import ButtonHandlers
from .cogs import EXTENSIONS
from .presenter import DiscordPresenter
from .delivery import too_late
from .views import CancelButton, ResultButton, StylesPageButton

log = logging.getLogger("nst-bot")

COMMANDS_SYNC_FILE = "commands-sync.json"  # what was last synced where
PURGE_EVERY = 300.0  # also how soon a cancelled or failed job's inputs go (after a grace period)


def work_queue(config: Config) -> WorkQueue:
    """Where jobs run: ``nst-bot worker`` processes through Redis, or this machine's own engine process."""
    if config.queue.backend == "redis":  # results are decoded in the shared pool
        return RedisWorkQueue(config.queue, shared_pool(config.limits), owner=process_name(config))
    if config.queue.backend == "instant":  # benchmarks and tests of the bot's own cost only
        return InstantWorkQueue()
    return LocalWorkQueue(None, config.engine.weights or None)


def process_name(config: Config) -> str:
    """This bot process among several sharing one Redis worker pool (``[discord] shard_ids``): its results
    come back on a stream of its own. Empty for a bot that holds all its shards."""
    return "shards-" + "-".join(map(str, sorted(config.discord.shard_ids))) if config.discord.shard_ids else ""


def syncs_commands(config: Config) -> bool:
    """Commands are the application's, not a shard's: with several bot processes, the one with shard 0 syncs."""
    return not config.discord.shard_ids or 0 in config.discord.shard_ids


class NSTBot(commands.Bot):
    """One gateway connection (``[discord] shards = "off"``); :class:`ShardedNSTBot` for more."""

    def __init__(self, config: Config, **client_options: Any) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # a text-only bot needs no voice
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None,
                         allowed_mentions=discord.AllowedMentions.none(),
                         heartbeat_timeout=config.discord.heartbeat_timeout,
                         http_trace=user_agent_trace(lambda: self.http.user_agent), **client_options)
        self.config = config
        self.store = JobStore(config.storage.data_dir)
        self.presets = PresetLibrary(config)
        self.metrics = Metrics() if config.metrics.enabled else None
        self.core = JobCore(self.store, work_queue(config), config.limits, batch_size=config.engine.batch_size,
                            job_timeout=config.engine.job_timeout,
                            disk=DiskBudget(self.store, config.storage.max_disk_mb * MB), recorder=self.metrics,
                            memory_budget_mb=config.engine.memory_budget_mb())
        self.presenter = DiscordPresenter(self, self.core, config.bot.progress_interval)
        self.settings = ServerSettings(self.store.db, config,
                                       lambda name, guild_id: self.presets.get(name, guild_id) is not None)
        self.buttons = ButtonHandlers(config, self.core, self.presenter, self.settings)  # what views' presses call
        self.exit_message: str | None = None
        self._background: list[asyncio.Task] = []
        self._closer: asyncio.Task | None = None
        self._closed = False

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CancelButton, ResultButton, StylesPageButton)
        self.tree.error(self._command_failed)
        self.add_listener(self.buttons.on_edit_submit, "on_interaction")  # Edit forms, also those from before a restart
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.metrics is not None:
            self.metrics.watch(lambda: len(self.core.active_jobs()), self.core.work.workers)
            self.metrics.serve(self.config.metrics)
        await self.core.start(self.presenter)
        await shared_pool(self.config.limits).start()
        self._background = [
            asyncio.create_task(heartbeat_loop(heartbeat_path(self.config), self.connection), name="nst-heartbeat"),
            asyncio.create_task(self._purge_loop(), name="nst-purge"),
            asyncio.create_task(self.presenter.status_loop(), name="nst-status"),
            asyncio.create_task(self._close_if_no_engine(), name="nst-engine-watch"),
        ]
        if syncs_commands(self.config):
            await self.sync_commands()

    async def _command_failed(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """A slash command raised: an answer Discord refused as too late is logged as such (and counted)."""
        if not too_late(interaction, getattr(error, "original", error)):
            await app_commands.CommandTree.on_error(self.tree, interaction, error)

    def connection(self) -> dict[str, Any]:
        """What the heartbeat says of the gateway connection."""
        return {"connected": self.is_ready()}

    async def sync_commands(self) -> None:
        """Sync slash commands only when they (or the target guilds) changed since the last sync.

        A scope the bot no longer uses is emptied, so members never see a command twice or a stale one: the
        global commands once ``guild_ids`` is set, a guild dropped from ``guild_ids``, and with no guilds left
        the guilds used before.
        """
        configured = sorted(self.config.discord.guild_ids)
        payload = {"application": self.application_id, "guilds": configured,
                   "commands": [command.to_dict(self.tree) for command in self.tree.get_commands()]}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        marker = self.config.storage.data_dir / COMMANDS_SYNC_FILE
        last = _last_sync(marker)
        if last.get("digest") == digest:
            log.info("slash commands unchanged; not syncing")
            return
        for guild_id in configured:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        for guild_id in sorted(set(last.get("guilds", ())) - set(configured)):
            await self.tree.sync(guild=discord.Object(guild_id))  # the tree holds nothing for it: emptied
            log.info("slash commands removed from guild %s (no longer in guild_ids)", guild_id)
        if not configured:
            await self.tree.sync()
        elif last.get("guilds") != configured:
            # Emptied on Discord only: the tree keeps its global commands, which also answer any interaction
            # that names no guild.
            await self.http.bulk_upsert_global_commands(self.application_id, [])
        marker.write_text(json.dumps({"digest": digest, "guilds": configured}))
        where = f"{len(configured)} guild(s)" if configured else "globally"
        log.info("synced %d slash commands %s", len(payload["commands"]), where)

    async def on_ready(self) -> None:
        log.info("connected as %s (id %s) to %d guild(s); torch imported in the bot process: %s",
                 self.user, self.user.id if self.user else "?", len(self.guilds), "torch" in sys.modules)

    async def _close_if_no_engine(self) -> None:
        """No engine can start (no weights, …): stop the bot, and let the CLI say why."""
        self.exit_message = await self.core.unavailable
        self._closer = asyncio.create_task(self.close())  # not awaited: closing cancels this very task

    async def _purge_loop(self) -> None:
        while True:
            removed = self.store.purge(self.config.storage.retention_days)
            if removed:
                log.info("removed %d finished job(s) older than %g days", removed, self.config.storage.retention_days)
            tidy(self.store)
            await asyncio.sleep(PURGE_EVERY)

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` has begun."""
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._background:
            task.cancel()
        await self.core.stop()
        await close_shared_pool()
        await super().close()
        self.store.close()


class ShardedNSTBot(NSTBot, commands.AutoShardedBot):
    """The same bot over several gateway connections (shards), each carrying the servers Discord assigns it;
    Discord requires this beyond 2,500 servers. ``shards = "auto"`` asks Discord (``GET /gateway/bot``) how many.
    With ``shard_ids``, this process connects only those: several processes share the shards (and one Redis
    worker pool), each owning the jobs of its servers; the one with shard 0 gets the direct messages too."""

    def __init__(self, config: Config) -> None:
        super().__init__(config, shard_count=None if config.discord.shards == "auto" else config.discord.shards,
                         shard_ids=list(config.discord.shard_ids) or None)  # None: all of them

    def connection(self) -> dict[str, Any]:
        return {**super().connection(),
                "shards": {str(shard_id): not shard.is_closed() for shard_id, shard in sorted(self.shards.items())}}

    async def on_shard_connect(self, shard_id: int) -> None:
        log.info("shard %d of %d connected", shard_id, self.shard_count)

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("shard %d of %d ready with %d guild(s)", shard_id, self.shard_count,
                 sum(1 for guild in self.guilds if guild.shard_id == shard_id))


def user_agent_trace(user_agent: Callable[[], str]) -> aiohttp.TraceConfig:
    """Give every request on discord.py's session its ``DiscordBot (url, version)`` User-Agent, as Discord asks:
    discord.py sets it on its own REST calls but not on webhook and interaction requests (follow-ups, edits of
    the original response), which would go out as aiohttp's."""
    trace = aiohttp.TraceConfig()

    async def name_the_bot(session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        params.headers.setdefault("User-Agent", user_agent())

    trace.on_request_start.append(name_the_bot)
    return trace


def new_bot(config: Config) -> NSTBot:
    """The bot class ``[discord] shards`` asks for."""
    return NSTBot(config) if config.discord.shards == "off" else ShardedNSTBot(config)


def use_endpoints(config: Config) -> None:
    """Point discord.py at the configured REST base and gateway (a proxy, or the test stand-in)."""
    discord.http.Route.BASE = config.discord.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.discord.gateway_url)


def run_bot(config: Config) -> int:
    """Run until stopped (Ctrl-C or SIGTERM); the exit status for the CLI."""
    token = discord_token()
    if not token:
        raise ConfigError("No Discord token: set DISCORD_TOKEN (or DISCORD_TOKEN_FILE) to your bot's token.")
    configure_logging(token, level=config.bot.log_level)
    use_endpoints(config)
    try:
        return asyncio.run(_run(config, token))
    except (OSError, aiohttp.ClientError, discord.HTTPException, discord.GatewayNotFound, discord.ConnectionClosed,
            sqlite3.OperationalError) as error:
        raise BotStopped(run_failure(config, error)) from None


class BotStopped(Exception):
    """What stopped the bot from outside (Discord out of reach or answering oddly, the disk), in one line."""


def run_failure(config: Config, error: BaseException) -> str:
    """One line for what stopped the bot: Discord out of reach, an answer it did not expect, the disk."""
    api = config.discord.api_base
    if isinstance(error, aiohttp.ClientConnectorError):
        return (f"cannot reach Discord at {api}: {network_reason(error.os_error)}. Check this machine's network "
                "(firewall, proxy) and [discord] api_base in the config.")
    if isinstance(error, discord.HTTPException):
        said = " ".join(error.text.split())[:120] if error.text and not error.text.lstrip().startswith("<") else ""
        return (f"Discord at {api} answered HTTP {error.status} {error.response.reason}{': ' + said if said else ''}."
                " If this persists, check [discord] api_base.")
    if isinstance(error, discord.ConnectionClosed):
        reason = f": {error.reason}" if error.reason else ""
        return f"Discord closed the gateway connection (code {error.code}{reason})."
    if isinstance(error, discord.GatewayNotFound):
        return "Discord did not say where its gateway is (it may be down); try again in a few minutes."
    if isinstance(error, (aiohttp.ClientError, TimeoutError)):
        return f"the connection to Discord at {api} failed: {network_reason(error)}."
    if isinstance(error, sqlite3.OperationalError):
        return f"the job store in {config.storage.data_dir} failed: {error}."
    where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
    return f"the bot stopped: {network_reason(error)}{where}."


async def _run(config: Config, token: str) -> int:
    bot = new_bot(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.create_task(bot.close()))
    try:
        async with bot:
            try:
                await bot.start(token)
            except Exception:
                # Our own close() (no engine, SIGTERM) can land while the gateway connection is half open;
                # aiohttp then fails inside its connect (seen once: "assert transport is not None"). A failure
                # before any close is the real error, raised as it is.
                if not bot.closing:
                    raise
    except discord.LoginFailure:
        raise ConfigError("Discord rejected the token (401 Unauthorized); check DISCORD_TOKEN.") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError("Discord refused a privileged intent; this bot needs none, so check the token's app.") from None
    if bot.exit_message:
        raise NSTError(f"The engine could not start: {bot.exit_message}")
    return 0


def _last_sync(marker: Path) -> dict[str, Any]:
    """What the last sync recorded; empty when unknown (first start, or an unreadable file)."""
    try:
        last = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return last if isinstance(last, dict) else {}
