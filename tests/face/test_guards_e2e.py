"""Buttons bound to their job, and a data dir that cannot be written, end to end: the real bot and engine
against the stand-in, with presses sent from the job's own channel, another channel of its server, another
server and a direct message (the stand-in plays Discord; a second server's interactions carry its own guild)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.face.discord_standin import (ALICE, BOB, CAROL, CHANNEL_ID, EPHEMERAL, MANAGE_GUILD, OTHER_GUILD,
                                       SECOND_CHANNEL, StandinThread)
from tests.face.harness import (BotProcess, again_id, callback, custom_id, images, result_message, status_message,
                               stylize, wait_original, wait_status)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

NOT_YOURS = "Only the person who asked for this image, or a member with Manage Server, can cancel it."
ELSEWHERE = "These buttons work only in the channel where the image was made."


def test_cancel_counts_manage_server_only_in_the_jobs_own_server(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, BOB, quality="slow")
    status = status_message(standin, token)
    wait_status(standin, int(status["id"]), "iteration")
    cancel = custom_id(status, "nst:cancel:")
    for where in ({"place": OTHER_GUILD}, {"dm": True}):  # an admin elsewhere is no admin here
        press = standin.press(status, cancel, CAROL, permissions=MANAGE_GUILD, **where)
        reply = callback(standin, press)["data"]
        assert reply["flags"] == EPHEMERAL and reply["content"] == f"⚠️ {NOT_YOURS}", where
    assert "iteration" in standin.message(int(status["id"]))["content"]  # still running
    admin = standin.press(status, cancel, CAROL, permissions=MANAGE_GUILD)  # an admin of the job's own server
    assert "Stopping" in callback(standin, admin)["data"]["content"]
    wait_status(standin, int(status["id"]), "Cancelled by Carol after")


def test_stronger_and_weaker_work_only_in_the_jobs_own_channel(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, CAROL, quality="fast")
    result = result_message(standin, token)
    stronger = again_id(result, "stronger")
    for where in ({"place": SECOND_CHANNEL}, {"place": OTHER_GUILD}, {"dm": True}):
        press = standin.press(result, stronger, BOB, **where)
        assert wait_original(standin, press, "⚠️") == f"⚠️ {ELSEWHERE}", where
        assert standin.followups(press) == []  # nothing queued, nothing posted anywhere
    press = standin.press(result, stronger, BOB)
    rerun = result_message(standin, press)
    assert int(rerun["channel_id"]) == CHANNEL_ID and "strength 2" in rerun["content"]


def test_a_dm_jobs_buttons_follow_allow_dms(bot: BotProcess, standin: StandinThread) -> None:
    content, style = images(standin)
    token = standin.command("stylize", {"content": content, "style": style, "quality": "fast"}, ALICE, dm=True)
    result = result_message(standin, token)
    bot.stop()  # the admin turns direct messages off
    bot.config.write_text(bot.config.read_text().replace("[discord]\n", "[discord]\nallow_dms = false\n", 1))
    standin.wait_for(lambda: not standin.connected(), 10, "the gateway connection to close")
    bot.start().wait_ready()
    press = standin.press(result, again_id(result, "weaker"), ALICE, dm=True)
    assert "works in servers only" in wait_original(standin, press, "⚠️")
    assert standin.followups(press) == []


def test_a_data_dir_that_cannot_be_written_is_a_clear_reply(bot: BotProcess, standin: StandinThread,
                                                             workdir: Path) -> None:
    jobs = workdir / "data" / "jobs"
    kept = jobs.with_name("jobs-kept")
    jobs.rename(kept)
    jobs.write_text("a file where the jobs folder should be: no job's images can be written")
    try:
        token = stylize(standin, BOB, quality="fast")
        reply = wait_original(standin, token, "⚠️")
        assert "could not save your images (its disk is full or read-only)" in reply
        assert standin.followups(token) == []
        bot.wait_until("could not save job")
        assert "Traceback" not in bot.output()[bot.log_start:]
    finally:
        jobs.unlink()
        kept.rename(jobs)
    assert result_message(standin, stylize(standin, BOB, quality="fast"))  # serving again, slot released
