"""The one way the bot tells a requester that something was refused: a private "⚠️ message" reply."""

from __future__ import annotations

import discord

MESSAGE_LIMIT = 2000  # Discord rejects longer message contents
CHOICE_LIMIT = 100  # and longer names of command choices (autocomplete answers included)


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to one of Discord's limits (an echoed option value, or an admin's quality name, can be long)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def warn(interaction: discord.Interaction, message: str) -> None:
    """Reply privately with ``message``: edit the deferred reply, or answer the interaction if not yet done."""
    content = fit(f"⚠️ {message}")
    if interaction.response.is_done():
        await interaction.edit_original_response(content=content)
    else:
        await interaction.response.send_message(content, ephemeral=True)
