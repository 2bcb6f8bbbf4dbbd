"""``/nst-settings`` end to end: the real ``nst-bot run`` and engine process against the Discord stand-in, the
settings in the real SQLite job store. Admins change a server's defaults, channels, limits and spoiler marking;
the next ``/stylize`` (and re-run button) in that server follows at once, direct messages keep the config's
values, and everything survives a restart. Only the first test runs by default; the rest run engine jobs
(``-m slow``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.face.discord_standin import ALICE, BOB, CAROL, EPHEMERAL, MANAGE_GUILD, SECOND_CHANNEL, StandinThread
from tests.face.harness import BotProcess, again_id, callback, custom_id, decoded, images, result_message, \
    status_message, stylize, wait_original, wait_status

pytestmark = pytest.mark.timeout(300)

SECOND = SECOND_CHANNEL[1]


def settings(standin: StandinThread, subcommand: str, who: dict[str, Any] = CAROL, *, permissions: int = MANAGE_GUILD,
             place: tuple[int, int] | None = None, dm: bool = False, **options: Any) -> str:
    """``/nst-settings <subcommand>`` by an admin (unless told otherwise); the private reply's text."""
    token = standin.command("nst-settings", options, who, subcommand=subcommand, permissions=permissions,
                            place=place, dm=dm)
    reply = callback(standin, token)
    assert reply["type"] == 4 and reply["data"]["flags"] == EPHEMERAL, reply
    return reply["data"]["content"]


@pytest.fixture(autouse=True)
def fresh_server(bot: BotProcess, standin: StandinThread) -> None:
    """Each test starts from a server that set nothing."""
    assert "Settings of this server" in settings(standin, "reset", scope="server")


def test_only_members_with_manage_server_in_a_server_may_use_it(standin: StandinThread) -> None:
    synced = next(c for c in standin.records("commands")[0].payload["commands"] if c["name"] == "nst-settings")
    assert int(synced["default_member_permissions"]) == MANAGE_GUILD and synced["dm_permission"] is False
    assert [sub["name"] for sub in synced["options"]] == ["show", "defaults", "channels", "limits", "spoiler", "reset"]
    assert settings(standin, "show", ALICE, permissions=0) == \
        "⚠️ Only members with Manage Server can see or change the bot's settings."
    assert settings(standin, "spoiler", ALICE, permissions=0, on=True).startswith("⚠️")
    assert "shown openly" in settings(standin, "show")  # the refused change was not made
    in_a_dm = settings(standin, "show", dm=True)
    assert in_a_dm == "⚠️ Use /nst-settings in a server: it changes that server's settings."
    shown = settings(standin, "show")
    assert "the bot answers in every channel; in this channel: answers" in shown
    levels = callback(standin, standin.autocomplete("nst-settings", "quality", "s", subcommand="defaults"))
    assert [choice["value"] for choice in levels["data"]["choices"]] == ["standard", "slow"]
    presets = callback(standin, standin.autocomplete("nst-settings", "preset", "wav", subcommand="defaults"))
    assert [choice["value"] for choice in presets["data"]["choices"]] == ["waves"]
    assert "size 1024 px (1024) · jobs per member 3 (3) · cooldown 0 s (at least 0)" in shown
    assert "• in force here: quality `standard` · preset — · preserve_colors —" in shown


@pytest.mark.slow  # runs engine jobs
def test_defaults_for_the_server_and_a_channel_fill_what_members_leave_out(standin: StandinThread) -> None:
    assert "whole server: quality `fast`" in settings(standin, "defaults", quality="fast")
    shown = settings(standin, "defaults", place=SECOND_CHANNEL, scope="channel", preset="Waves",
                     preserve_colors="luminance")
    assert "this channel: quality — · preset `waves` · preserve_colors `luminance`" in shown
    assert "in force here: quality `fast` · preset `waves` · preserve_colors `luminance`" in shown
    assert "⚠️ There is no preset called `sunset`" in settings(standin, "defaults", preset="sunset")

    plain = result_message(standin, stylize(standin, BOB))  # the server's quality; its own style image
    assert "your style image · fast · " in plain["content"]
    assert max(decoded(standin, plain["attachments"][0]).size) == 48
    content, _ = images(standin)
    token = standin.command("stylize", {"content": content, "quality": "standard"}, BOB, place=SECOND_CHANNEL)
    assert "preset *Waves* · standard (64 px" in status_message(standin, token)["content"]
    assert "colours: luminance" in status_message(standin, token)["content"]
    assert "preset *Waves* · standard · " in result_message(standin, token)["content"]


@pytest.mark.slow  # runs engine jobs
def test_closed_channels_refuse_with_where_the_bot_works(standin: StandinThread) -> None:
    earlier = result_message(standin, stylize(standin, BOB, quality="fast"))
    assert "in this channel: does not answer" in settings(standin, "channels", answer="not-here")
    refused = wait_original(standin, stylize(standin, BOB, quality="fast"), "⚠️")
    assert refused == "⚠️ The admins turned the bot off in this channel; please use it in another channel of " \
                      "this server."
    shown = settings(standin, "channels", place=SECOND_CHANNEL, answer="only-allowed")
    assert f"the bot answers only in <#{SECOND}>; in this channel: answers" in shown
    where = f"⚠️ The bot works only in <#{SECOND}> on this server; please use it there."
    assert wait_original(standin, stylize(standin, ALICE, quality="fast"), "⚠️") == where
    rerun = standin.press(earlier, again_id(earlier, "stronger"), BOB)
    assert wait_original(standin, rerun, "⚠️") == where  # the result's buttons follow the channel's setting
    assert "the bot answers in every channel; in this channel: answers" in \
        settings(standin, "channels", answer="everywhere")
    assert "strength 2" in result_message(standin, standin.press(earlier, again_id(earlier, "stronger"), BOB))[
        "content"]


@pytest.mark.slow  # runs engine jobs
def test_server_limits_stay_within_the_configs_and_apply_at_once(standin: StandinThread) -> None:
    shown = settings(standin, "limits", max_size=2000, max_jobs=5)
    assert "⚠️ `max_size` 2000 is beyond the bot's cap; set to 1024" in shown
    assert "⚠️ `max_jobs_per_user` 5 is beyond the bot's cap; set to 3" in shown
    assert "size 1024 px (1024) · jobs per member 3 (3)" in shown
    assert "size 32 px (1024) · jobs per member 1 (3)" in settings(standin, "limits", max_size=32, max_jobs=1)
    sizes = callback(standin, standin.autocomplete("stylize", "size", "", kind=4, others={"quality": "standard"}))
    assert sizes["data"]["choices"][0] == {"name": "32 px (the most for standard)", "value": 32}  # the server's cap
    assert "· 1 jobs each ·" in callback(standin, standin.command("help"))["data"]["content"]

    small = stylize(standin, CAROL, quality="standard")
    assert "size 64 px capped to 32 px for standard quality" in status_message(standin, small)["content"]
    assert max(decoded(standin, result_message(standin, small)["attachments"][0]).size) == 32

    long_job = stylize(standin, BOB, quality="slow")
    status = status_message(standin, long_job)
    second = wait_original(standin, stylize(standin, BOB, quality="fast"), "⚠️")
    assert "You already have 1 job(s) queued or running (the limit is 1)" in second
    queue = callback(standin, standin.command("queue"))["data"]["content"]
    assert "at most 1 per person" in queue  # the server's limit, not the config's 3
    standin.press(status, custom_id(status, "nst:cancel:"), BOB)
    wait_status(standin, int(status["id"]), "🛑 Cancelled")

    assert "cooldown 600 s (at least 0)" in settings(standin, "limits", cooldown_seconds=600.0)
    waiting = wait_original(standin, stylize(standin, BOB, quality="fast"), "⚠️")
    assert "Please wait 600 s between requests" in waiting
    assert "size 1024 px (1024) · jobs per member 3 (3) · cooldown 0 s" in settings(standin, "limits", clear=True)


@pytest.mark.slow  # runs engine jobs
def test_settings_survive_a_restart_and_direct_messages_keep_the_configs(bot: BotProcess,
                                                                       standin: StandinThread) -> None:
    settings(standin, "defaults", quality="fast")
    assert "posted as spoilers" in settings(standin, "spoiler", on=True)
    bot.stop()
    bot.start().wait_ready()
    assert "whole server: quality `fast`" in settings(standin, "show")
    spoiled = result_message(standin, stylize(standin, ALICE))
    assert spoiled["attachments"][0]["filename"].startswith("SPOILER_stylized-")
    assert "· fast ·" in spoiled["content"]
    content, style = images(standin)
    direct = result_message(standin, standin.command("stylize", {"content": content, "style": style}, ALICE, dm=True))
    assert "· standard ·" in direct["content"]  # no server's defaults in a direct message
    assert direct["attachments"][0]["filename"].startswith("stylized-")

