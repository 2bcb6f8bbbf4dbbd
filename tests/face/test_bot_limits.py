"""Limits from the config, end to end: jobs per user, queue size, cooldown, DM refusal, guild command sync."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.face.discord_standin import (ALICE, APPLICATION_ID, BOB, CAROL, EPHEMERAL, GUILD_ID, MANAGE_GUILD,
                                      StandinThread, user)
from tests.face.harness import (BotProcess, callback, custom_id, status_message, stylize, wait_original, wait_status,
                               write_config)

pytestmark = pytest.mark.timeout(180)

DAVE = user(700000000000000004, "dave")
COMMANDS = 7  # /stylize, /styles, /queue, /help, /preset, /nst-settings and the Stylize image menu


BOT_CONFIG = {"discord": f"allow_dms = false\nguild_ids = [{GUILD_ID}]",
              "limits": {"max_queue": 3, "max_jobs_per_user": 1, "cooldown_seconds": 60}}


def test_limits_say_what_and_when(bot: BotProcess, standin: StandinThread) -> None:
    first = stylize(standin, ALICE, quality="slow")
    wait_original(standin, first, "Queued at position")
    again = stylize(standin, ALICE, quality="fast")
    assert "You already have 1 job(s) queued or running (the limit is 1)" in wait_original(standin, again, "⚠️")

    bob = stylize(standin, BOB, quality="slow")
    carol = stylize(standin, CAROL, quality="slow")
    for token in (bob, carol):
        wait_original(standin, token, "Queued at position")
    full = stylize(standin, DAVE, quality="fast")
    assert "The queue is full (3 jobs). Please try again in" in wait_original(standin, full, "⚠️")

    bob_status = status_message(standin, bob)
    standin.press(bob_status, custom_id(bob_status, "nst:cancel:"), BOB)
    wait_status(standin, int(bob_status["id"]), "Cancelled by Bob")
    cooldown = wait_original(standin, stylize(standin, BOB, quality="fast"), "⚠️")
    retry_at = int(re.search(r"<t:(\d+):R>", cooldown).group(1))
    assert "Please wait 60 s between requests" in cooldown and 0 < retry_at - time.time() <= 61

    for token in (first, carol):  # an admin clears the queue
        status = status_message(standin, token)
        standin.press(status, custom_id(status, "nst:cancel:"), DAVE, permissions=MANAGE_GUILD)
        wait_status(standin, int(status["id"]), "Cancelled by Dave")


def test_direct_messages_refused_when_configured(bot: BotProcess, standin: StandinThread) -> None:
    token = standin.command("stylize", {"content": standin.attachment("a.png", b"x")}, DAVE, dm=True)
    assert callback(standin, token)["data"]["flags"] == EPHEMERAL
    assert "works in servers only" in wait_original(standin, token, "⚠️")


def test_commands_are_synced_to_the_configured_guild(bot: BotProcess, standin: StandinThread) -> None:
    guild, global_ = standin.records("commands")
    assert guild.path.endswith(f"/guilds/{GUILD_ID}/commands") and len(guild.payload["commands"]) == COMMANDS
    assert global_.path.endswith(f"/applications/{APPLICATION_ID}/commands") and global_.payload["commands"] == []


@pytest.mark.slow  # resyncs the commands through three scope changes: about 10-20 s on a 2-core AVX2 EPYC
def test_switching_command_scopes_leaves_no_stale_commands(standin: StandinThread, tmp_path: Path,
                                                           vgg_weights: Path) -> None:
    other_guild = GUILD_ID + 1

    def registered_after_start(guild_ids: list[int]) -> dict[str, int]:
        config = write_config(tmp_path, standin, vgg_weights, discord=f"guild_ids = {guild_ids}")
        BotProcess(config, tmp_path / "bot.log").start().wait_ready().stop()
        counts = standin.call(lambda: {scope: len(commands) for scope, commands in standin.standin.commands.items()})
        return {scope: count for scope, count in counts.items() if scope in ("global", str(GUILD_ID),
                                                                             str(other_guild))}

    assert registered_after_start([])["global"] == COMMANDS
    assert registered_after_start([GUILD_ID]) == {"global": 0, str(GUILD_ID): COMMANDS}
    assert registered_after_start([other_guild]) == {"global": 0, str(GUILD_ID): 0, str(other_guild): COMMANDS}
    assert registered_after_start([]) == {"global": COMMANDS, str(GUILD_ID): 0, str(other_guild): 0}
