"""End to end: the real ``nst-bot run`` process (discord.py over real sockets, the real engine process with a
seeded random VGG19, real SQLite) against the loopback Discord stand-in. Assertions are on what the stand-in
received: callbacks and their flags, messages, buttons, files and the decoded images.

Only Discord itself is replaced (it cannot be reached from here); one bot process serves most tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.face.discord_standin import (ALICE, BOB, CAROL, CHANNEL_ID, DM_CHANNEL_ID, EPHEMERAL, GUILD_ID,
                                       MANAGE_GUILD, StandinThread)
from tests.face.harness import (TOKEN, BotProcess, again_id, bomb_png, callback, custom_id, decoded, images, png_bytes,
                               result_message, status_message, stylize, wait_original, wait_status, write_config)
from tests.conftest import make_content, make_style

pytestmark = pytest.mark.timeout(240)

CONTENT_SIZE = (96, 64)  # make_content(); at 64 px long side the result is 64×43


# -------------------------------------------------------------------------------------------------- tests


def test_commands_synced_with_options_from_the_specs(bot: BotProcess, standin: StandinThread) -> None:
    syncs = standin.records("commands")
    assert len(syncs) == 1
    commands = {c["name"]: c for c in syncs[0].payload["commands"]}
    assert set(commands) == {"stylize", "Stylize image", "styles", "preset", "queue", "help", "nst-settings"}
    options = {o["name"]: o for o in commands["stylize"]["options"]}
    assert options["content"]["required"] and options["content"]["type"] == 11
    assert [c["value"] for c in options["quality"]["choices"]] == ["fast", "standard", "high", "medium", "slow"]
    assert (options["size"]["min_value"], options["size"]["max_value"]) == (16, 4096)
    assert [c["value"] for c in options["preserve_colors"]["choices"]] == ["none", "luminance", "histogram"]
    assert options["preset"]["autocomplete"] is True
    assert "torch imported in the bot process: False" in bot.output()


def test_stylize_with_a_style_image(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, quality="medium")
    assert callback(standin, token) == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert "Queued at position **1**" in wait_original(standin, token, "Queued")
    status = status_message(standin, token)
    assert not status["flags"] & EPHEMERAL
    assert custom_id(status, "nst:cancel:")
    result = result_message(standin, token)
    assert f"<@{ALICE['id']}>" in result["content"]
    assert result["attachments"][0]["filename"].endswith(".png")
    assert decoded(standin, result["attachments"][0]).size == (64, 43)
    delivery = next(r for r in standin.records("webhook", token) if r.message_id == int(result["id"]))
    assert delivery.payload["allowed_mentions"]["users"] == [int(ALICE["id"])]
    assert again_id(result, "stronger") and again_id(result, "weaker")
    edits = [r for r in standin.records("webhook", token) if r.method == "PATCH" and r.message_id == int(status["id"])]
    progress = [r.payload["content"] for r in edits if "iteration" in r.payload.get("content", "")]
    assert any("█" in text and "/40 · ETA" in text for text in progress), progress
    assert any(name == "preview.png" for r in edits for name, _, _ in r.files)
    assert "Done" in wait_status(standin, int(status["id"]), "Done")["content"]


def test_stylize_with_a_preset_and_options(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, preset="waves", quality="fast", strength=3.0, preserve_colors="luminance", size=4000)
    result = result_message(standin, token)
    assert "preset *Waves*" in result["content"] and "strength 3" in result["content"]
    assert decoded(standin, result["attachments"][0]).size == (48, 32)  # size capped by the fast level
    status = standin.message(int(status_message(standin, token)["id"]))
    assert "size 4000 px capped to 48 px for fast quality" in status["content"]


def test_result_over_the_upload_limit_is_sent_compressed(bot: BotProcess, standin: StandinThread) -> None:
    content, style = images(standin)
    token = standin.command("stylize", {"content": content, "style": style}, upload_limit=3000)
    result = result_message(standin, token)
    attachment = result["attachments"][0]
    assert attachment["filename"].rsplit(".", 1)[1] in ("webp", "jpg")
    assert len(standin.attachment_bytes(attachment)) <= 3000
    assert decoded(standin, attachment).size == (64, 43)


BAD_INPUTS = [
    ("a text file", {"content": ("notes.txt", b"hello, not a picture", "text/plain", None)}, "is not an image"),
    ("a corrupt PNG", {"content": ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 20, "image/png", None)},
     "could not be read"),
    ("a truncated PNG", {"content": ("cut.png", png_bytes(make_content())[:300], "image/png", None)}, "corrupt"),
    ("more bytes than declared", {"content": ("big.png", b"\x89PNG" + b"\0" * 250_000, "image/png", 1000)},
     "larger than the 0.2 MB limit"),
    ("a declared size over the cap", {"content": ("huge.png", b"x", "image/png", 5_000_000)}, "the limit is 0.2 MB"),
    ("a decompression bomb", {"content": ("bomb.png", bomb_png(30000, 30000), "image/png", None)}, "too large"),
    ("an SVG", {"content": ("art.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", None)}, "SVG"),
    ("an empty file", {"content": ("empty.png", b"", "image/png", 0)}, "empty file"),
    ("no style and no preset", {"style": None}, "exactly one of `style`"),
    ("both a style and a preset", {"preset": "waves", "style": "keep"}, "exactly one of `style`"),
    ("an unknown preset", {"preset": "nope", "style": None}, "no preset called `nope`"),
    ("a strength out of range", {"strength": 1000.0}, "Strength must be between 0.01 and 100, not 1000."),
]


@pytest.mark.parametrize("case, change, expected", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_private_explanation(bot: BotProcess, standin: StandinThread, case: str,
                                              change: dict[str, Any], expected: str) -> None:
    content, style = images(standin)
    options: dict[str, Any] = {"content": content, "style": style}
    for key, value in change.items():
        if isinstance(value, tuple):
            options[key] = standin.attachment(*value[:3], size=value[3])
        elif value is None:
            options.pop(key)
        elif value != "keep":
            options[key] = value
    token = standin.command("stylize", options, BOB)
    assert callback(standin, token)["data"]["flags"] == EPHEMERAL
    reply = wait_original(standin, token, "⚠️")
    assert expected in reply, reply
    assert standin.followups(token) == []  # nothing public, nothing queued


def test_bot_keeps_serving_after_bad_inputs(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, who=BOB, quality="fast")
    assert decoded(standin, result_message(standin, token)["attachments"][0]).size == (48, 32)


def test_preset_autocomplete_answers_from_memory(bot: BotProcess, standin: StandinThread) -> None:
    token = standin.autocomplete("stylize", "preset", "wa")
    reply = callback(standin, token)
    assert reply["type"] == 8
    assert [c["value"] for c in reply["data"]["choices"]] == ["waves"]
    everything = callback(standin, standin.autocomplete("stylize", "preset", ""))["data"]["choices"]
    assert {c["value"] for c in everything} == {"mosaic", "waves", "embers", "cubist", "pointillist"}
    by_title = callback(standin, standin.autocomplete("stylize", "preset", "dots"))["data"]["choices"]
    assert [c["value"] for c in by_title] == ["pointillist"]


def test_size_suggestions_show_the_chosen_quality_levels_real_limit(bot: BotProcess, standin: StandinThread) -> None:
    def offered(typed: str, **others: str) -> list[dict]:
        token = standin.autocomplete("stylize", "size", typed, kind=4, others=others)
        return callback(standin, token)["data"]["choices"]

    assert offered("", quality="fast") == [{"name": "48 px (the most for fast)", "value": 48}]
    assert offered("")[0] == {"name": "64 px (the most for standard)", "value": 64}  # the default level
    over = offered("500", quality="standard")[0]
    assert over["value"] == 64 and "500 px is over standard's 64 px" in over["name"]


def test_cancel_while_queued_and_while_running(bot: BotProcess, standin: StandinThread) -> None:
    running = stylize(standin, ALICE, quality="slow")
    running_status = status_message(standin, running)
    wait_status(standin, int(running_status["id"]), "iteration")
    queued = stylize(standin, BOB, quality="slow")
    queued_status = status_message(standin, queued)
    assert "position **1**" in queued_status["content"]

    stranger = standin.press(queued_status, custom_id(queued_status, "nst:cancel:"), CAROL)
    assert callback(standin, stranger)["data"]["flags"] == EPHEMERAL
    assert "Only the person who asked" in callback(standin, stranger)["data"]["content"]

    owner = standin.press(queued_status, custom_id(queued_status, "nst:cancel:"), BOB)
    update = callback(standin, owner)
    assert update["type"] == 7 and "Cancelled by Bob while queued" in update["data"]["content"]
    assert update["data"]["components"] == []

    admin = standin.press(running_status, custom_id(running_status, "nst:cancel:"), CAROL, permissions=MANAGE_GUILD)
    assert "Stopping" in callback(standin, admin)["data"]["content"]
    final = wait_status(standin, int(running_status["id"]), "Cancelled by Carol after")["content"]
    done, total = final.rsplit("after ", 1)[1].split(" ")[0].split("/")
    assert int(done) < int(total) == 400
    assert not any("here is your image" in m["content"] for m in standin.followups(running) + standin.followups(queued))
    # The engine is free again at once.
    after = stylize(standin, CAROL, quality="fast")
    assert result_message(standin, after)


def test_jobs_from_two_users_are_served_in_order(bot: BotProcess, standin: StandinThread) -> None:
    first = stylize(standin, ALICE, quality="medium")
    wait_status(standin, int(status_message(standin, first)["id"]), "iteration")
    second = stylize(standin, BOB, quality="fast")
    assert "position **1**" in wait_original(standin, second, "Queued")
    third = stylize(standin, ALICE, quality="fast")
    assert "position **2**" in wait_original(standin, third, "Queued")
    queue = standin.command("queue", {}, CAROL)
    listing = callback(standin, queue)["data"]
    assert listing["flags"] == EPHEMERAL
    lines = listing["content"].splitlines()
    assert lines[0].startswith("▶️") and ALICE["id"] in lines[0] and "running" in lines[0]
    assert lines[1].startswith("**1.**") and BOB["id"] in lines[1] and "queued" in lines[1]
    assert lines[2].startswith("**2.**") and ALICE["id"] in lines[2]
    results = [int(result_message(standin, token)["id"]) for token in (first, second, third)]
    assert results == sorted(results)


def test_stronger_and_weaker_rerun_with_the_same_inputs(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, CAROL, quality="fast")
    result = result_message(standin, token)
    assert " · from [image" not in result["content"]  # a first result comes from no other
    stronger = standin.press(result, again_id(result, "stronger"), BOB)
    assert callback(standin, stronger) == {"type": 5, "data": {"flags": EPHEMERAL}}
    strong_result = result_message(standin, stronger)
    assert "strength 2" in strong_result["content"] and f"<@{BOB['id']}>" in strong_result["content"]
    assert decoded(standin, strong_result["attachments"][0]).size == (48, 32)
    # The re-run links to the message it came from.
    assert f"(https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{result['id']})" in strong_result["content"]
    # Both posted PNGs carry their recipe, the re-run's with its own strength.
    first, second = (json.loads(decoded(standin, r["attachments"][0]).info["nst-bot"]) for r in (result, strong_result))
    assert (first["quality"], first["options"]["strength"], second["options"]["strength"]) == ("fast", 1.0, 2.0)
    assert first["style"] == "your style image" and first["options"]["size"] == second["options"]["size"] == 48
    assert "quality fast, size 48" in decoded(standin, result["attachments"][0]).info["parameters"]
    weaker = standin.press(strong_result, again_id(strong_result, "weaker"), BOB)
    assert "strength 1 ·" in result_message(standin, weaker)["content"]


def test_expired_token_delivers_through_channel_messages(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, BOB, quality="medium")
    status = status_message(standin, token)
    standin.expire(token)
    def channel_result() -> Any:
        return next((r for r in standin.records("channel") if r.method == "POST" and r.files
                     and f"<@{BOB['id']}>" in r.payload.get("content", "")), None)
    delivery = standin.wait_for(channel_result, 90, "a result posted to the channel")
    assert delivery.path == f"/api/v10/channels/{CHANNEL_ID}/messages"
    assert delivery.payload["allowed_mentions"]["users"] == [int(BOB["id"])]
    message = standin.message(delivery.message_id)
    # The post carries the job's nonce, enforced, so a retried post returns the first message (docs/bot.md).
    job_id = custom_id(message, "nst:again:").split(":")[2]
    assert (delivery.payload.get("nonce"), delivery.payload.get("enforce_nonce")) == (f"nst{job_id}", True)
    assert decoded(standin, message["attachments"][0]).size == (64, 43)
    assert any(r.status == 401 for r in standin.records("webhook", token))
    wait_status(standin, int(status["id"]), "Done")
    assert [r for r in standin.records("channel") if r.method == "PATCH" and r.message_id == int(status["id"])]


def test_a_token_near_its_15_minutes_switches_to_channel_messages(bot: BotProcess, standin: StandinThread) -> None:
    content, style = images(standin)
    before = len(standin.records("channel"))
    token = standin.command("stylize", {"content": content, "style": style, "quality": "fast"}, CAROL,
                            age=14.5 * 60)  # the interaction was created 14½ minutes ago
    wait_original(standin, token, "Queued")  # the token still answers the command itself

    def channel_posts() -> list[Any]:
        return [r for r in standin.records("channel")[before:] if r.method == "POST"]
    standin.wait_for(lambda: any(r.files and f"<@{CAROL['id']}>" in r.payload["content"] for r in channel_posts()),
                     90, "the result posted to the channel")
    assert "Queued" in channel_posts()[0].payload["content"] or "iteration" in channel_posts()[0].payload["content"]
    assert not [r for r in standin.records("webhook", token) if r.method == "POST"]  # no follow-up was tried


def test_stylize_in_a_direct_message(bot: BotProcess, standin: StandinThread) -> None:
    content, style = images(standin)
    token = standin.command("stylize", {"content": content, "style": style, "quality": "fast"}, CAROL, dm=True)
    result = result_message(standin, token)
    assert int(result["channel_id"]) == DM_CHANNEL_ID and "guild_id" not in result
    assert decoded(standin, result["attachments"][0]).size == (48, 32)


def test_styles_gallery_and_help(bot: BotProcess, standin: StandinThread) -> None:
    token = standin.command("styles")
    gallery = standin.wait_for(lambda: standin.followups(token), 30, "the gallery")[0]
    assert "`waves`" in gallery["content"]
    sheet = decoded(standin, gallery["attachments"][0])
    assert sheet.width >= 4 * 160 and sheet.height >= 2 * 160  # five thumbnails in rows of four
    help_text = callback(standin, standin.command("help"))["data"]
    assert help_text["flags"] == EPHEMERAL
    assert "`medium`: 64 px, 40 iterations" in help_text["content"] and "`pointillist`" in help_text["content"]


def test_admins_add_and_remove_presets(bot: BotProcess, standin: StandinThread, workdir: Path) -> None:
    image = standin.attachment("mine.png", png_bytes(make_style(seed=7)))
    refused = standin.command("preset", {"name": "mine", "image": image}, BOB, subcommand="add")
    assert "Only members with Manage Server" in wait_original(standin, refused, "⚠️")

    added = standin.command("preset", {"name": "../../My Style!!", "image": image, "title": "Mine"}, CAROL,
                            subcommand="add", permissions=MANAGE_GUILD)
    assert "Added preset `my-style`" in wait_original(standin, added, "Added")
    presets_dir = workdir / "data" / "presets" / str(GUILD_ID)  # each server's own (tests/face/test_presets_servers.py)
    assert sorted(p.name for p in presets_dir.iterdir()) == ["index.json", "my-style.png"]
    found = callback(standin, standin.autocomplete("stylize", "preset", "my"))["data"]["choices"]
    assert [c["value"] for c in found] == ["my-style"]
    token = stylize(standin, CAROL, quality="fast", preset="my-style")
    assert "preset *Mine*" in result_message(standin, token)["content"]

    builtin = standin.command("preset", {"name": "waves"}, CAROL, subcommand="remove", permissions=MANAGE_GUILD)
    assert "comes from the config file" in callback(standin, builtin)["data"]["content"]
    removed = standin.command("preset", {"name": "my-style"}, CAROL, subcommand="remove", permissions=MANAGE_GUILD)
    assert "Removed preset `my-style`" in callback(standin, removed)["data"]["content"]
    assert not (presets_dir / "my-style.png").exists()


def test_healthcheck_reads_a_fresh_heartbeat(bot: BotProcess) -> None:
    check = subprocess.run([sys.executable, "-m", "bot", "healthcheck", "--config", str(bot.config)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "healthy" in check.stdout and "connected to Discord" in check.stdout


def test_buttons_work_after_a_restart_and_commands_are_not_resynced(bot: BotProcess, standin: StandinThread,
                                                                     workdir: Path) -> None:
    token = stylize(standin, ALICE, quality="fast")
    result = result_message(standin, token)
    assert bot.stop() == 0
    standin.wait_for(lambda: not standin.connected(), 10, "the gateway connection to close")
    bot.start().wait_ready()
    assert "slash commands unchanged; not syncing" in bot.output()
    assert len(standin.records("commands")) == 1
    weaker = standin.press(result, again_id(result, "weaker"), ALICE)
    assert "strength 0.5" in result_message(standin, weaker)["content"]


def test_the_token_never_reaches_logs_or_messages(bot: BotProcess, standin: StandinThread) -> None:
    assert TOKEN not in bot.output()
    assert all(TOKEN not in (m.get("content") or "") for m in standin.messages())


def test_missing_or_rejected_token_is_one_clear_line(standin: StandinThread, tmp_path: Path,
                                                     vgg_weights: Path) -> None:
    config = write_config(tmp_path, standin, vgg_weights)
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISCORD_TOKEN")}
    missing = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "nst-bot: error: No Discord token: set DISCORD_TOKEN (or DISCORD_TOKEN_FILE) to your bot's token."]

    with StandinThread(invalid_tokens=(TOKEN,)) as strict:
        config = write_config(tmp_path, strict, vgg_weights)
        rejected = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)],
                                  env={**env, "DISCORD_TOKEN": TOKEN}, capture_output=True, text=True, timeout=60)
    assert rejected.returncode == 2
    assert rejected.stderr.strip().splitlines()[-1] == ("nst-bot: error: Discord rejected the token "
                                                        "(401 Unauthorized); check DISCORD_TOKEN.")
    assert "Traceback" not in rejected.stderr and TOKEN not in rejected.stderr + rejected.stdout


def test_no_weights_stops_the_bot_with_one_clear_line(standin: StandinThread, tmp_path: Path) -> None:
    config = write_config(tmp_path, standin, tmp_path / "missing.pth")
    env = {**os.environ, "DISCORD_TOKEN": TOKEN}
    env.pop("NST_WEIGHTS", None)
    run = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [  # checked before connecting to Discord: nothing else logged
        f"nst-bot: error: The VGG19 weights file {str(tmp_path / 'missing.pth')!r} (from `[engine] weights` in the "
        "config) does not exist."]
