"""The one way the bot tells a requester that something was refused: a private "⚠️ message" reply."""

from __future__ import annotations

import discord

MESSAGE_LIMIT = 2000  # Discord rejects longer message contents


def fit(text: str) -> str:
    """``text`` cut to Discord's message limit (an echoed option value can be long)."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


async def warn(interaction: discord.Interaction, message: str) -> None:
    """Reply privately with ``message``: edit the deferred reply, or answer the interaction if not yet done."""
    content = fit(f"⚠️ {message}")
    if interaction.response.is_done():
        await interaction.edit_original_response(content=content)
    else:
        await interaction.response.send_message(content, ephemeral=True)
