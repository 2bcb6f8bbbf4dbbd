"""The buttons as Discord shows them and what a press reaches (found by mutation testing,
docs/mutation-report.md): labels, emoji and styles, the gallery's ends, and each press handed to the handler
named by its custom id."""

from __future__ import annotations

from types import SimpleNamespace

import discord

from bot.face.cogs.presets import PresetsCog
from bot.face.views import (CancelButton, ResultButton, StylesPageButton, page_view, result_view,
                            status_view)

JOB = "0123456789abcdef"


def looks(item) -> tuple:
    button = item.item
    return button.label, str(button.emoji), button.style, button.disabled


async def test_status_and_result_buttons_look_as_documented() -> None:
    (cancel,) = status_view(JOB).children
    assert looks(cancel) == ("Cancel", "✖️", discord.ButtonStyle.secondary, False)
    assert [looks(button) for button in result_view(JOB).children] == [
        ("Weaker", "➖", discord.ButtonStyle.primary, False), ("Stronger", "➕", discord.ButtonStyle.primary, False),
        ("Re-roll", "🎲", discord.ButtonStyle.primary, False), ("Edit", "🖋️", discord.ButtonStyle.primary, False),
        ("Upscale", "⬆️", discord.ButtonStyle.primary, False), ("Info", "📋", discord.ButtonStyle.secondary, False),
        ("Delete", "❌", discord.ButtonStyle.danger, False)]


async def test_the_gallery_buttons_lead_to_the_pages_beside_and_stop_at_the_ends() -> None:
    def pages(page: int, count: int) -> list[tuple]:
        return [(b.custom_id, *looks(b)) for b in page_view(page, count).children]
    assert pages(0, 3) == [("nst:styles:back:0", "Previous", "◀️", discord.ButtonStyle.secondary, True),
                           ("nst:styles:on:1", "Next", "▶️", discord.ButtonStyle.secondary, False)]
    assert [entry[0::4] for entry in pages(1, 3)] == [("nst:styles:back:0", False), ("nst:styles:on:2", False)]
    assert [entry[0::4] for entry in pages(2, 3)] == [("nst:styles:back:1", False), ("nst:styles:on:2", True)]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        async def record(*args) -> None:
            self.calls.append((name, *args))
        return record


async def test_a_press_reaches_the_handler_its_custom_id_names() -> None:
    buttons, presets = Recorder(), Recorder()
    cogs = {PresetsCog.__cog_name__: presets}  # the gallery's pages are turned by the cog of that name
    interaction = SimpleNamespace(client=SimpleNamespace(buttons=buttons, get_cog=cogs.get))
    for item, custom_id in ((CancelButton, f"nst:cancel:{JOB}"), (ResultButton, f"nst:again:{JOB}:upscale"),
                            (StylesPageButton, "nst:styles:on:4")):
        match = item.__discord_ui_compiled_template__.fullmatch(custom_id)
        pressed = await item.from_custom_id(interaction, None, match)
        assert pressed.custom_id == custom_id
        await pressed.callback(interaction)
    assert buttons.calls == [("cancel", interaction, JOB), ("on_result", interaction, JOB, "upscale")]
    assert presets.calls == [("turn_page", interaction, 4)]
