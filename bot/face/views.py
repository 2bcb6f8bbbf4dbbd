"""Buttons whose custom ids carry the job id, so they keep working after a restart (``DynamicItem``).

The job id in a custom id is only ever looked up in the job store (16 hex digits, checked by the template);
what a button may do is decided from the stored job (:mod:`bot.face.buttons`), not by anything the client sends.
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


class ResultButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=r"nst:again:(?P<job>[0-9a-f]{16}):"
                            r"(?P<way>weaker|stronger|reroll|edit|upscale|info|delete)"):
    """A button on a posted result: re-run it (weaker, stronger, another seed, edited, larger), show its details,
    or delete it."""

    LOOKS = {  # way: (label, emoji, style), in the order they sit on the result
        "weaker": ("Weaker", "➖", discord.ButtonStyle.primary),
        "stronger": ("Stronger", "➕", discord.ButtonStyle.primary),
        "reroll": ("Re-roll", "🎲", discord.ButtonStyle.primary),
        "edit": ("Edit", "🖋️", discord.ButtonStyle.primary),
        "upscale": ("Upscale", "⬆️", discord.ButtonStyle.primary),
        "info": ("Info", "📋", discord.ButtonStyle.secondary),
        "delete": ("Delete", "❌", discord.ButtonStyle.danger),
    }

    def __init__(self, job_id: str, way: str) -> None:
        label, emoji, style = self.LOOKS[way]
        super().__init__(discord.ui.Button(label=label, emoji=emoji, style=style,
                                           custom_id=result_marker(job_id) + way))
        self.job_id, self.way = job_id, way

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> "ResultButton":
        return cls(match["job"], match["way"])

    async def callback(self, interaction: discord.Interaction) -> Any:
        await interaction.client.buttons.on_result(interaction, self.job_id, self.way)


class StylesPageButton(discord.ui.DynamicItem[discord.ui.Button],
                       template=r"nst:styles:(?P<way>back|on):(?P<page>[0-9]{1,4})"):
    """◀ / ▶ under the /styles gallery; the custom id names the page it leads to (the way keeps the two ids
    apart, as Discord wants them unique in a message)."""

    def __init__(self, way: str, page: int, disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(label="Previous" if way == "back" else "Next",
                                           emoji="◀️" if way == "back" else "▶️", style=discord.ButtonStyle.secondary,
                                           custom_id=f"nst:styles:{way}:{page}", disabled=disabled))
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> "StylesPageButton":
        return cls(match["way"], int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> Any:
        await interaction.client.get_cog("Presets").turn_page(interaction, self.page)


def page_view(page: int, pages: int) -> discord.ui.View:
    """The gallery's ◀ / ▶ for ``page`` (0-based) of ``pages``; each is disabled at its end."""
    view = discord.ui.View(timeout=None)
    view.add_item(StylesPageButton("back", max(page - 1, 0), disabled=page == 0))
    view.add_item(StylesPageButton("on", min(page + 1, pages - 1), disabled=page == pages - 1))
    return view


def status_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for way in ResultButton.LOOKS:
        view.add_item(ResultButton(job_id, way))
    return view
