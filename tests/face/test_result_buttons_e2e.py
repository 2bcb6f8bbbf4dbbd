"""The result's Re-roll 🎲, Info 📋 and Delete ❌ buttons end to end: the real bot and engine process against the
stand-in (which plays Discord), real SQLite read back for what the job store keeps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.face.discord_standin import ALICE, BOB, CAROL, EPHEMERAL, MANAGE_GUILD, OTHER_GUILD, StandinThread
from tests.face.harness import BotProcess, again_id, callback, decoded, result_message, stylize

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

NOT_YOURS_TO_DELETE = "Only the person who asked for this image, or a member with Manage Server, can delete it."
ELSEWHERE = "These buttons work only in the channel where the image was made."


def job_of(result: dict) -> str:
    return again_id(result, "info").split(":")[2]


def info_text(standin: StandinThread, result: dict, who: dict = ALICE) -> str:
    reply = callback(standin, standin.press(result, again_id(result, "info"), who))
    assert reply["type"] == 4 and reply["data"]["flags"] == EPHEMERAL
    return reply["data"]["content"]


def refusal(standin: StandinThread, press: str) -> str:
    """The private reply to a refused press."""
    data = callback(standin, press)["data"]
    assert data["flags"] == EPHEMERAL
    return data["content"]


def test_result_buttons_in_their_order(bot: BotProcess, standin: StandinThread) -> None:
    result = result_message(standin, stylize(standin, ALICE, quality="fast"))
    buttons = [(c["label"], c["custom_id"]) for row in result["components"] for c in row["components"]]
    job = job_of(result)
    assert buttons == [(label, f"nst:again:{job}:{way}") for label, way in
                       (("Weaker", "weaker"), ("Stronger", "stronger"), ("Re-roll", "reroll"), ("Edit", "edit"),
                        ("Upscale", "upscale"), ("Info", "info"), ("Delete", "delete"))]


def test_reroll_makes_a_different_image_of_the_same_size(bot: BotProcess, standin: StandinThread) -> None:
    original = result_message(standin, stylize(standin, CAROL, quality="fast", strength=3.0))
    press = standin.press(original, again_id(original, "reroll"), BOB)
    assert callback(standin, press) == {"type": 5, "data": {"flags": EPHEMERAL}}
    rerolled = result_message(standin, press)
    assert f"<@{BOB['id']}>" in rerolled["content"] and "strength 3" in rerolled["content"]
    first, second = (decoded(standin, m["attachments"][0]).convert("RGB") for m in (original, rerolled))
    assert first.size == second.size
    difference = np.abs(np.asarray(first, dtype=np.int16) - np.asarray(second, dtype=np.int16))
    assert difference.mean() > 1.0, difference.mean()  # a different take, not a copy
    info = info_text(standin, rerolled, BOB)
    assert "**seed** 1" in info and f"A re-run of image `{job_of(original)}`" in info
    again = standin.press(rerolled, again_id(rerolled, "reroll"), ALICE)
    assert "**seed** 2" in info_text(standin, result_message(standin, again))  # the next seed each time


def test_info_shows_options_timings_and_device(bot: BotProcess, standin: StandinThread, workdir: Path) -> None:
    result = result_message(standin, stylize(standin, BOB, quality="fast", preserve_colors="luminance"))
    info = info_text(standin, result, CAROL)  # anyone in the channel may look
    assert f"📋 **Image `{job_of(result)}`**" in info and "asked by Bob" in info
    assert "**Quality** fast · **size** 48 px · **iterations**" in info
    assert "**strength** 1 · **colours** luminance · **seed** 0" in info
    assert "**Queued** <t:" in info and "**waited** " in info and "**ran** " in info and "--" not in info
    assert "**Device** cpu" in info
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:  # recorded in the store, not just in memory
        assert db.execute("SELECT device FROM jobs WHERE id = ?", (job_of(result),)).fetchone() == ("cpu",)
    elsewhere = standin.press(result, again_id(result, "info"), CAROL, place=OTHER_GUILD)
    assert refusal(standin, elsewhere) == f"⚠️ {ELSEWHERE}"


def test_delete_by_the_requester_or_an_admin_only(bot: BotProcess, standin: StandinThread, workdir: Path) -> None:
    result = result_message(standin, stylize(standin, BOB, quality="fast"))
    delete, job = again_id(result, "delete"), job_of(result)
    refusals = [((CAROL, 0, None), NOT_YOURS_TO_DELETE),  # another member without Manage Server
                ((CAROL, MANAGE_GUILD, OTHER_GUILD), ELSEWHERE)]  # an admin of another server
    for (who, permissions, place), expected in refusals:
        press = standin.press(result, delete, who, permissions, place=place)
        assert refusal(standin, press) == f"⚠️ {expected}"
    assert standin.message(int(result["id"])) is not None
    press = standin.press(result, delete, BOB)
    assert callback(standin, press) == {"type": 6}
    standin.wait_for(lambda: standin.message(int(result["id"])) is None, 10, "the result to be deleted")
    deletions = [r for r in standin.records("webhook", press) if r.method == "DELETE"]
    assert [r.message_id for r in deletions] == [int(result["id"])]
    reply = standin.wait_for(lambda: standin.followups(press), 10, "the confirmation")[0]
    assert reply["content"] == "🗑️ Image deleted." and reply["flags"] & EPHEMERAL
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:  # the job's row stays, its result file goes
        assert db.execute("SELECT state FROM jobs WHERE id = ?", (job,)).fetchone() == ("done",)
    assert not (workdir / "data" / "jobs" / job / "result.png").exists()
    other = result_message(standin, stylize(standin, ALICE, quality="fast"))
    admin = standin.press(other, again_id(other, "delete"), CAROL, MANAGE_GUILD)  # an admin of the job's server
    standin.wait_for(lambda: standin.message(int(other["id"])) is None, 10, "the admin's deletion")
    assert callback(standin, admin) == {"type": 6}


def test_delete_refuses_a_custom_id_pressed_on_another_message(bot: BotProcess, standin: StandinThread) -> None:
    theirs = result_message(standin, stylize(standin, CAROL, quality="fast"))
    mine = result_message(standin, stylize(standin, BOB, quality="fast"))
    # Bob's own job's buttons, shown as if on Carol's image (Discord sends the message as it is; a tampered
    # client or a bug elsewhere is what this guards against)
    forged = standin.press({**theirs, "components": mine["components"]}, again_id(mine, "delete"), BOB)
    assert refusal(standin, forged) == "⚠️ This button does not belong to this message, so nothing was deleted."
    assert standin.message(int(theirs["id"])) is not None
    press = standin.press(mine, again_id(mine, "delete"), BOB)
    assert callback(standin, press) == {"type": 6}
    standin.wait_for(lambda: standin.message(int(mine["id"])) is None, 10, "Bob's result to be deleted")


def test_a_menu_id_on_a_button_gets_a_clear_reply(bot: BotProcess, standin: StandinThread) -> None:
    result = result_message(standin, stylize(standin, BOB, quality="fast"))
    menu_id = "nst:menu:0123456789abcdef:preset"  # a select's id, on a button
    button = {"type": 2, "style": 1, "label": "Go", "custom_id": menu_id}
    press = standin.press({**result, "components": [{"type": 1, "components": [button]}]}, menu_id, BOB)
    assert refusal(standin, press) == "⚠️ That choice is not on this menu; please pick one of the options shown."
    assert "AttributeError" not in bot.output()
