"""Several styles with blend weights, the Edit 🖋 form and the Upscale ⬆️ button end to end: the real bot and
engine process against the stand-in (which shows and submits modals as Discord documents them), real SQLite and
the job folders read back for what each job keeps."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.face.discord_standin import ALICE, BOB, CAROL, EPHEMERAL, OTHER_GUILD, StandinThread
from tests.face.harness import (BotProcess, again_id, callback, decoded, images, result_message, stylize,
                               wait_original)
from tests.conftest import make_style, png_bytes

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
# The test levels run fast (48 px), standard (64 px), then the default high (768 px); the cap keeps upscales small.
BOT_CONFIG = {"limits": {"max_size": 64}}

ELSEWHERE = "These buttons work only in the channel where the image was made."


def job_of(result: dict[str, Any]) -> str:
    return again_id(result, "info").split(":")[2]


def row(workdir: Path, job: str) -> dict[str, Any]:
    """The job's row in the store, its options parsed."""
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:
        db.row_factory = sqlite3.Row
        found = dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job,)).fetchone())
    return {**found, "options": json.loads(found["options"])}


def job_count(workdir: Path) -> int:
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def kept_files(workdir: Path, job: str) -> list[str]:
    return sorted(path.name for path in (workdir / "data" / "jobs" / job).iterdir())


def refused(standin: StandinThread, token: str) -> str:
    """The private warning a refused request gets (nothing is posted in the channel)."""
    reply = wait_original(standin, token, "⚠️")
    assert standin.followups(token) == []
    return reply


def open_form(standin: StandinThread, result: dict[str, Any], who: dict[str, Any], **where: Any) -> str:
    """Press Edit 🖋: the bot answers with its form."""
    press = standin.press(result, again_id(result, "edit"), who, **where)
    assert callback(standin, press)["type"] == 9
    return press


def test_a_blend_of_an_upload_and_a_preset_is_kept_and_rerolled(bot: BotProcess, standin: StandinThread,
                                                                 workdir: Path) -> None:
    token = stylize(standin, ALICE, quality="fast", preset2="waves", weights="3,1", style_scale=0.5)
    result = result_message(standin, token)
    assert "here is your image — your style image + preset *Waves* (3:1) · fast" in result["content"]
    job = job_of(result)
    assert row(workdir, job)["options"]["style_weights"] == [3.0, 1.0]
    assert row(workdir, job)["options"]["style_scale"] == 0.5
    assert kept_files(workdir, job) == ["content.png", "result.png", "style-2.png", "style.png"]
    press = standin.press(result, again_id(result, "reroll"), BOB)
    rerolled = result_message(standin, press)
    child = row(workdir, job_of(rerolled))
    assert child["parent_id"] == job and child["options"]["seed"] == 1
    assert (child["options"]["style_weights"], child["options"]["style_scale"]) == ([3.0, 1.0], 0.5)
    assert kept_files(workdir, job_of(rerolled)) == ["content.png", "result.png", "style-2.png", "style.png"]
    stronger = result_message(standin, standin.press(rerolled, again_id(rerolled, "stronger"), BOB))
    grandchild = row(workdir, job_of(stronger))["options"]
    assert (grandchild["strength"], grandchild["seed"], grandchild["style_weights"]) == (2.0, 1, [3.0, 1.0])


def test_three_uploads_with_weights_and_bad_blends_refused(bot: BotProcess, standin: StandinThread,
                                                           workdir: Path) -> None:
    second = standin.attachment("second.png", png_bytes(make_style(40, seed=5)))
    third = standin.attachment("third.png", png_bytes(make_style(40, seed=9)))
    result = result_message(standin, stylize(standin, BOB, quality="fast", style2=second, style3=third,
                                             weights="1 1 2"))
    assert "your style image + your style image 2 + your style image 3 (1:1:2)" in result["content"]
    assert kept_files(workdir, job_of(result)) == ["content.png", "result.png", "style-2.png", "style-3.png",
                                                   "style.png"]
    before = job_count(workdir)
    notes = standin.attachment("notes.txt", b"not a picture", "text/plain")
    refusals = [
        (dict(preset2="waves", weights="1,2,3"), "Give one weight per style: 2 styles but 3 weights"),
        (dict(style2=second, preset2="waves"), "Give `style2` or `preset2`, not both."),
        (dict(preset3="no-such-preset"), "There is no preset called `no-such-preset`"),
        (dict(style3=notes), "The style image 3 `notes.txt` is not an image (text/plain)"),
        (dict(preset2="waves", weights="0,0"), "At least one weight must be above 0."),
    ]
    for options, message in refusals:
        assert message in refused(standin, stylize(standin, CAROL, quality="fast", **options))
    assert job_count(workdir) == before  # nothing was queued


def test_upscale_starts_from_the_result_at_the_next_level(bot: BotProcess, standin: StandinThread,
                                                          workdir: Path) -> None:
    original = result_message(standin, stylize(standin, ALICE, quality="fast", preset2="embers", weights="1,2",
                                               strength=2.0))
    parent = job_of(original)
    press = standin.press(original, again_id(original, "upscale"), CAROL)
    assert callback(standin, press) == {"type": 5, "data": {"flags": EPHEMERAL}}
    upscaled = result_message(standin, press)
    assert decoded(standin, upscaled["attachments"][0]).size == (64, 43)  # standard's size, the fast one 48×32
    assert "· standard · 64×43 · strength 2" in upscaled["content"] and f"<@{CAROL['id']}>" in upscaled["content"]
    child = row(workdir, job_of(upscaled))
    assert (child["parent_id"], child["quality"], child["options"]["size"]) == (parent, "standard", 64)
    assert child["options"]["style_weights"] == [1.0, 2.0] and child["options"]["strength"] == 2.0
    started_from = Image.open(workdir / "data" / "jobs" / job_of(upscaled) / "init.png").convert("RGB")
    assert started_from.tobytes() == Image.open(workdir / "data" / "jobs" / parent / "result.png").convert(
        "RGB").tobytes()  # the parent's result, as it was
    again = standin.press(upscaled, again_id(upscaled, "upscale"), CAROL)  # standard → high, capped at 64 px
    assert ("This image (64 px) cannot be upscaled: the next quality level, `high`, is not larger (this server's "
            "largest size is 64 px).") in refused(standin, again)


def test_edit_form_shows_the_values_and_reruns_with_the_changes(bot: BotProcess, standin: StandinThread,
                                                                workdir: Path) -> None:
    result = result_message(standin, stylize(standin, BOB, quality="fast", strength=2.0, preset2="waves",
                                             weights="2,1"))
    parent = job_of(result)
    press = open_form(standin, result, CAROL)  # anyone in the channel, as with Re-roll
    form = standin.modal(press)
    assert form["custom_id"] == f"nst:edit:{parent}" and form["title"] == "Edit and re-run"
    fields = {c["component"]["custom_id"]: (c["label"], c["component"].get("value")) for c in form["components"]}
    assert fields == {"strength": ("Strength", "2"), "quality": ("Quality", "fast"),
                      "colours": ("Colours", "none"), "preset": ("Preset", None)}
    submit = standin.submit_modal(press, {"strength": "4", "colours": "Luminance"}, CAROL)
    assert callback(standin, submit) == {"type": 5, "data": {"flags": EPHEMERAL}}
    edited = result_message(standin, submit)
    assert "· fast · 48×32 · strength 4" in edited["content"]
    child = row(workdir, job_of(edited))
    assert child["parent_id"] == parent and child["user_id"] == int(CAROL["id"])
    assert child["options"]["preserve_colors"] == "luminance" and child["options"]["style_weights"] == [2.0, 1.0]
    with_preset = standin.submit_modal(open_form(standin, result, BOB), {"preset": "mosaic", "quality": "standard"},
                                       BOB)
    swapped = result_message(standin, with_preset)
    assert "here is your image — preset *Mosaic* · standard · 64×43 · strength 2" in swapped["content"]
    assert row(workdir, job_of(swapped))["options"]["style_weights"] == []
    assert kept_files(workdir, job_of(swapped)) == ["content.png", "result.png", "style.png"]


def test_bad_edits_are_refused_and_nothing_is_queued(bot: BotProcess, standin: StandinThread,
                                                     workdir: Path) -> None:
    result = result_message(standin, stylize(standin, ALICE, quality="fast"))
    before = job_count(workdir)
    refusals = [
        ({"strength": "strong"}, "Strength must be a number such as `1.5`, not `strong`."),
        ({"strength": "500"}, "Strength must be between 0.01 and 100, not 500."),
        ({"quality": "ultra"}, "Unknown quality `ultra`; choose one of fast, standard, high, medium, slow."),
        ({"colours": "sepia"}, "Colours must be one of none, luminance, histogram, not `sepia`."),
        ({"preset": "no-such-preset"}, "There is no preset called `no-such-preset`"),
        ({}, "Nothing was changed; edit a value to make a new image."),
    ]
    for values, message in refusals:
        assert message in refused(standin, standin.submit_modal(open_form(standin, result, ALICE), values, ALICE))
    elsewhere = standin.submit_modal(open_form(standin, result, ALICE), {"strength": "3"}, ALICE, place=OTHER_GUILD)
    assert refused(standin, elsewhere) == f"⚠️ {ELSEWHERE}"
    assert job_count(workdir) == before


def test_edit_and_upscale_in_a_direct_message(bot: BotProcess, standin: StandinThread) -> None:
    content, style = images(standin)
    token = standin.command("stylize", {"content": content, "style": style, "preset2": "waves", "quality": "fast"},
                            ALICE, dm=True)
    result = result_message(standin, token)
    submit = standin.submit_modal(open_form(standin, result, ALICE, dm=True), {"strength": "3"}, ALICE)
    edited = result_message(standin, submit)
    assert int(edited["channel_id"]) == int(result["channel_id"]) and "strength 3" in edited["content"]
    upscale = standin.press(edited, again_id(edited, "upscale"), ALICE, dm=True)
    assert "· standard · 64×43 · strength 3" in result_message(standin, upscale)["content"]


def test_a_form_opened_before_a_restart_still_works(bot: BotProcess, standin: StandinThread) -> None:
    result = result_message(standin, stylize(standin, BOB, quality="fast"))
    press = open_form(standin, result, BOB)
    bot.stop()
    standin.wait_for(lambda: not standin.connected(), 10, "the gateway connection to close")
    bot.start().wait_ready()
    edited = result_message(standin, standin.submit_modal(press, {"strength": "0.5"}, BOB))
    assert "strength 0.5" in edited["content"]
    upscaled = result_message(standin, standin.press(result, again_id(result, "upscale"), BOB))
    assert "· standard · 64×43" in upscaled["content"]
