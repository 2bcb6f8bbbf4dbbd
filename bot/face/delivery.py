"""Where a job's messages go: the interaction's webhook while its token lives, then bot-owned channel messages.

Interaction tokens expire 15 minutes after the command. Past that point (or on a 401 / code 50027 from
Discord, or for jobs resumed after a restart, whose tokens were never stored) the status message is edited
through the channel, or posted anew there, and the result is posted to the channel with the requester mentioned.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import aiohttp
import discord

from .views import result_marker

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60
TOKEN_MARGIN = 60  # switch to channel messages a minute early rather than fail mid-upload
EXPIRED_TOKEN_CODE = 50027
UNKNOWN_MESSAGE_CODE = 10008
UNKNOWN_INTERACTION_CODE = 10062  # the answer came after Discord's 3-second window: it has given up on it
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
NO_MENTIONS = discord.AllowedMentions.none()
# What talking to Discord can raise: its errors, and the network's.
DISCORD_TROUBLE = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)
HISTORY_SEARCH_LIMIT = 200


def token_expired(error: discord.HTTPException) -> bool:
    return error.status == 401 or error.code == EXPIRED_TOKEN_CODE


def too_late(interaction: discord.Interaction, error: BaseException) -> bool:
    """Whether Discord refused an answer because it came after the interaction's 3-second window (404 Unknown
    interaction; the member saw "The application did not respond"); such a refusal is logged and counted."""
    if not (isinstance(error, discord.NotFound) and error.code == UNKNOWN_INTERACTION_CODE):
        return False
    age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    log.warning("interaction %s from user %s was answered %.1f s after it was made, past Discord's 3-second "
                "window (Unknown interaction); dropped", interaction.id, interaction.user.id, age)
    metrics = getattr(interaction.client, "metrics", None)
    if metrics is not None:
        metrics.interaction_too_late()
    return True


async def defer_privately(interaction: discord.Interaction) -> bool:
    """Acknowledge with a private "thinking…" reply; False when that is refused: the interaction came too late
    (:func:`too_late`), or Discord says it was already answered (the same event delivered twice, e.g. replayed
    after a gateway resume), so it is not handled twice."""
    try:
        await interaction.response.defer(ephemeral=True, thinking=True)
        return True
    except (discord.InteractionResponded, discord.HTTPException) as error:
        if not too_late(interaction, error):
            log.info("interaction %s was already answered; not handling it again (%s)", interaction.id,
                     type(error).__name__)
        return False


def image_file(data: bytes, filename: str) -> discord.File:
    return discord.File(io.BytesIO(data), filename=filename)


class JobMessages:
    """The status message and result delivery of one job."""

    def __init__(self, bot: discord.Client, channel_id: int, interaction: discord.Interaction | None = None,
                 status_message_id: int | None = None) -> None:
        self.bot = bot
        self.channel_id = channel_id
        self.webhook = interaction.followup if interaction else None
        # Tokens live 15 minutes from the interaction's creation (the time in its snowflake id).
        created = interaction.created_at.timestamp() if interaction else 0.0
        self.token_deadline = created + TOKEN_LIFETIME - TOKEN_MARGIN
        self.upload_limit = interaction.filesize_limit if interaction else None
        self.status_message_id = status_message_id

    @property
    def via_webhook(self) -> bool:
        return self.webhook is not None and time.time() < self.token_deadline

    def expire_token(self) -> None:
        if self.webhook is not None:
            log.info("interaction token expired; using channel messages for channel %s", self.channel_id)
        self.webhook = None

    async def channel(self) -> discord.abc.Messageable:
        channel = self.bot.get_channel(self.channel_id)
        return channel if channel is not None else await self.bot.fetch_channel(self.channel_id)

    async def upload_limit_bytes(self) -> int:
        if self.upload_limit:
            return self.upload_limit
        guild = getattr(await self.channel(), "guild", None)
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _either(self, webhook_call: Callable[[discord.Webhook], Awaitable[Any]],
                      channel_call: Callable[[], Awaitable[Any]]) -> Any:
        if self.via_webhook:
            try:
                return await webhook_call(self.webhook)
            except discord.HTTPException as error:
                if not token_expired(error):
                    raise
                self.expire_token()
        return await channel_call()

    async def post_status(self, content: str, view: discord.ui.View | None) -> None:
        """Post the public status message (a follow-up to the deferred command, or a channel message)."""
        async def by_webhook(webhook: discord.Webhook) -> discord.Message:
            return await webhook.send(content, view=view or discord.utils.MISSING, wait=True,
                                      allowed_mentions=NO_MENTIONS)

        async def by_channel() -> discord.Message:
            return await (await self.channel()).send(content, view=view, allowed_mentions=NO_MENTIONS)

        message = await self._either(by_webhook, by_channel)
        self.status_message_id = message.id

    async def edit_status(self, content: str, *, preview: bytes | None = None,
                          view: discord.ui.View | None = None) -> None:
        """Edit the status message; if it is gone (deleted, or not editable any more), post it anew."""
        files = [image_file(preview, "preview.png")] if preview else []
        if self.status_message_id is None:
            return await self.post_status(content, view)

        async def by_webhook(webhook: discord.Webhook) -> None:
            await webhook.edit_message(self.status_message_id, content=content, attachments=files, view=view,
                                       allowed_mentions=NO_MENTIONS)

        async def by_channel() -> None:
            message = (await self.channel()).get_partial_message(self.status_message_id)
            await message.edit(content=content, attachments=files, view=view, allowed_mentions=NO_MENTIONS)

        try:
            await self._either(by_webhook, by_channel)
        except (discord.NotFound, discord.Forbidden) as error:
            log.info("status message %s not editable (%s); posting a new one", self.status_message_id, error.code)
            self.status_message_id = None
            await self.post_status(content, view)

    async def find_result(self, job_id: str, since: float) -> int | None:
        """The id of this job's result if it was already posted (found by its buttons), else None.

        Used for jobs interrupted around delivery, so a restart never posts a result twice.
        """
        if self.bot.user is None:
            return None
        marker = result_marker(job_id)
        after = discord.Object(discord.utils.time_snowflake(datetime.fromtimestamp(since, timezone.utc)))
        async for message in (await self.channel()).history(after=after, limit=HISTORY_SEARCH_LIMIT):
            if message.author.id != self.bot.user.id:
                continue
            for row in message.components:
                if any(marker in (getattr(item, "custom_id", None) or "") for item in getattr(row, "children", ())):
                    return message.id
        return None

    async def deliver(self, content: str, data: bytes, filename: str, user_id: int,
                      view: discord.ui.View | None, job_id: str) -> int:
        """Post the result with the requester mentioned; returns the message id.

        Channel messages carry a nonce Discord enforces, so a retried post cannot appear twice.
        """
        mention = discord.AllowedMentions(users=[discord.Object(user_id)], everyone=False, roles=False)

        async def by_webhook(webhook: discord.Webhook) -> discord.Message:
            return await webhook.send(content, file=image_file(data, filename), view=view or discord.utils.MISSING,
                                      wait=True, allowed_mentions=mention)

        async def by_channel() -> discord.Message:
            channel = await self.channel()
            return await channel.send(content, file=image_file(data, filename), view=view, allowed_mentions=mention,
                                      nonce=f"nst{job_id}")

        message = await self._either(by_webhook, by_channel)
        return message.id
