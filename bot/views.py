"""Buttons whose custom ids carry the job id, so they keep working after a restart (``DynamicItem``).

The job id in a custom id is only ever looked up in the job store (16 hex digits, checked by the template);
what a button may do is decided from the stored job (:mod:`bot.buttons`), not by anything the client sends.
Presses reach the handlers through ``interaction.client.buttons``, so this module imports nothing of the bot.
"""

from __future__ import annotations

import re
from typing import Any

import discord


def result_marker(job_id: str) -> str:
    """The start of the custom ids of a result's buttons: also how a posted result is recognised."""
    return f"nst:again:{job_id}:"


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=r"nst:cancel:(?P<job>[0-9a-f]{16})"):
    def __init__(self, job_id: str) -> None:
        super().__init__(discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary, emoji="✖️",
                                           custom_id=f"nst:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> "CancelButton":
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        await interaction.client.buttons.cancel(interaction, self.job_id)


class AgainButton(discord.ui.DynamicItem[discord.ui.Button],
                  template=r"nst:again:(?P<job>[0-9a-f]{16}):(?P<way>stronger|weaker)"):
    """Re-run a finished job with the same inputs and the style strength doubled or halved."""

    FACTORS = {"stronger": 2.0, "weaker": 0.5}

    def __init__(self, job_id: str, way: str) -> None:
        label, emoji = ("Stronger", "➕") if way == "stronger" else ("Weaker", "➖")
        super().__init__(discord.ui.Button(label=label, emoji=emoji, style=discord.ButtonStyle.primary,
                                           custom_id=result_marker(job_id) + way))
        self.job_id, self.way = job_id, way

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> "AgainButton":
        return cls(match["job"], match["way"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        await interaction.client.buttons.again(interaction, self.job_id, self.FACTORS[self.way])


def status_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AgainButton(job_id, "weaker"))
    view.add_item(AgainButton(job_id, "stronger"))
    return view
