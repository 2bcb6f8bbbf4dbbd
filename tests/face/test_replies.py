"""Every reply fits Discord's 2,000-character limit (docs/bot.md): a refusal that echoes a long value, or a status
line under a long label, is cut with an ellipsis, never sent whole for Discord to reject."""

from __future__ import annotations

from types import SimpleNamespace

from bot.face.replies import CHOICE_LIMIT, MESSAGE_LIMIT, fit, warn


def test_text_is_cut_to_the_limit_with_an_ellipsis_and_left_alone_within_it() -> None:
    assert (MESSAGE_LIMIT, CHOICE_LIMIT) == (2000, 100)  # Discord's message content and choice-name limits
    assert fit("x" * 2000) == "x" * 2000
    assert fit("x" * 2001) == "x" * 1999 + "…"
    assert fit("y" * 101, CHOICE_LIMIT) == "y" * 99 + "…" and fit("y" * 100, CHOICE_LIMIT) == "y" * 100


class Interaction:
    """What warn() uses of a discord.Interaction: its response state and the two ways to answer."""

    def __init__(self, answered: bool) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.response = SimpleNamespace(is_done=lambda: answered, send_message=self._send)

    async def _send(self, content: str, **options) -> None:
        self.sent.append((content, options))

    async def edit_original_response(self, *, content: str) -> None:
        self.sent.append((content, {"edited": True}))


async def test_a_warning_that_echoes_a_long_value_fits_one_message() -> None:
    fresh, deferred = Interaction(answered=False), Interaction(answered=True)
    for interaction in (fresh, deferred):
        await warn(interaction, "Unknown preset `" + "z" * 5000 + "`")
    (content, options), (edited, how) = fresh.sent + deferred.sent
    assert len(content) == 2000 and content.startswith("⚠️ Unknown preset `zz") and content.endswith("…")
    assert options == {"ephemeral": True} and how == {"edited": True} and edited == content
