"""The stand-in's modals follow Discord's documented rules, so a form the bot builds wrongly fails the tests the way
Discord would refuse it (400 Invalid Form Body) rather than passing here."""

from __future__ import annotations

from typing import Any

import pytest

from bot.face.edit_form import edit_form
from bot.jobs.model import Job
from nst_engine.options import StylizeOptions
from tests.face.discord_standin import MODAL_SUBMIT, DiscordStandin


def field(custom_id: str) -> dict[str, Any]:
    return {"type": 4, "custom_id": custom_id, "style": 1}


def modal(*components: dict[str, Any], title: str = "Edit", custom_id: str = "nst:edit:1") -> dict[str, Any]:
    return {"custom_id": custom_id, "title": title, "components": list(components)}


PRESSED = {"type": 3}  # the state of a button press, which a modal may answer


def test_the_bots_edit_form_is_a_valid_modal() -> None:
    job = Job("0123456789abcdef", 1, "Ann", 5, 6, "preset *Waves*", "fast", StylizeOptions(strength=2.5))
    form = edit_form(job, ["fast", "standard", "high"]).to_dict()
    assert DiscordStandin.modal_refusal(PRESSED, form) is None
    assert [c["type"] for c in form["components"]] == [18, 18, 18, 18]  # labels, each holding a text input


@pytest.mark.parametrize("state, data, reason", [
    ({"type": MODAL_SUBMIT}, modal({"type": 18, "label": "A", "component": field("a")}), "cannot answer a modal"),
    (PRESSED, modal(title=""), "title"),
    (PRESSED, modal({"type": 18, "label": "A", "component": field("a")}, title="x" * 46), "title"),
    (PRESSED, modal(), "1 to 5 components"),
    (PRESSED, modal(*({"type": 18, "label": "A", "component": field(f"f{n}")} for n in range(6))), "1 to 5"),
    (PRESSED, modal({"type": 18, "label": "x" * 46, "component": field("a")}), "label's text"),
    (PRESSED, modal({"type": 18, "label": "A", "component": field("a")},
                    {"type": 18, "label": "B", "component": field("a")}), "its own custom id"),
    (PRESSED, modal({"type": 2, "label": "a button", "custom_id": "b"}), "unexpected component 2"),
])
def test_modals_discord_would_refuse(state: dict[str, Any], data: dict[str, Any], reason: str) -> None:
    assert reason in (DiscordStandin.modal_refusal(state, data) or "")


def test_the_older_action_row_form_is_still_accepted() -> None:
    assert DiscordStandin.modal_refusal(PRESSED, modal({"type": 1, "components": [field("a")]})) is None


def test_the_edit_form_holds_a_quality_name_longer_than_its_usual_field() -> None:
    long_name = "q" * 80  # an admin's quality level; Discord refuses a pre-filled value over a field's max_length
    job = Job("0123456789abcdef", 1, "Ann", 5, 6, "preset *Waves*", long_name, StylizeOptions())
    form = edit_form(job, ["fast", long_name]).to_dict()
    assert DiscordStandin.modal_refusal(PRESSED, form) is None
    quality = next(c["component"] for c in form["components"] if c["component"]["custom_id"] == "quality")
    assert quality["value"] == long_name and quality["max_length"] == 80
