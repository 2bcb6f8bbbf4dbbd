"""*Stylize image* (right-click a message → Apps) end to end: the real bot and engine process against the
stand-in, which plays Discord — a member's message with pictures, the message command (type 3) with the
message in ``resolved.messages``, and choices in the private menu's string selects (component type 3). The
menu's state is read back from real SQLite; the results are decoded to check which picture was used."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.face.discord_standin import (ALICE, BOB, CAROL, EPHEMERAL, SECOND_CHANNEL, StandinThread,
                                       picture_embed)
from tests.face.harness import BotProcess, callback, decoded, png_bytes, result_message, wait_original
from tests.conftest import make_content

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

MENU = "Stylize image"
NOT_YOURS = "This menu belongs to the member who opened it; right-click the message → Apps → Stylize image."
ELSEWHERE = "This menu works only in the channel where it was opened."
EXPIRED = "This menu has expired; right-click the message → Apps → Stylize image to open a new one."
NOT_OFFERED = "That choice is not on this menu; please pick one of the options shown."


def picture(standin: StandinThread, name: str, size: tuple[int, int]) -> dict[str, Any]:
    """An uploaded PNG of the test photo at ``size``, so a result's shape tells which picture was used."""
    return standin.attachment(name, png_bytes(make_content().resize(size, Image.BILINEAR)))


def open_menu(standin: StandinThread, target: dict[str, Any], who: dict[str, Any] = ALICE,
              **where: Any) -> tuple[str, dict[str, Any]]:
    """Use the context menu on ``target``; the token and the private menu it answered with."""
    token = standin.message_command(MENU, target, who, **where)
    reply = callback(standin, token)
    assert reply["type"] == 4 and reply["data"]["flags"] == EPHEMERAL, reply
    return token, standin.original(token)


def select(menu: dict[str, Any], part: str) -> dict[str, Any]:
    found = [c for row in menu["components"] for c in row["components"]
             if c["type"] == 3 and c["custom_id"].endswith(f":{part}")]
    assert len(found) == 1, menu["components"]
    return found[0]


def parts(menu: dict[str, Any]) -> list[str]:
    return [c["custom_id"].rsplit(":", 1)[1] for row in menu["components"] for c in row["components"]]


def chosen(menu: dict[str, Any], part: str) -> list[str]:
    return [option["value"] for option in select(menu, part)["options"] if option.get("default")]


def choose(standin: StandinThread, token: str, part: str, value: str, who: dict[str, Any] = ALICE,
           **where: Any) -> str:
    """Pick ``value`` in the menu's ``part`` select, as it now stands."""
    menu = standin.original(token)
    return standin.choose(menu, select(menu, part)["custom_id"], [value], who, **where)


def redrawn(standin: StandinThread, press: str, token: str) -> dict[str, Any]:
    """The menu after a choice that changes it (answered by updating the menu message itself)."""
    assert callback(standin, press)["type"] == 7
    return standin.original(token)


def refusal(standin: StandinThread, token: str) -> str:
    data = callback(standin, token)["data"]
    assert data["flags"] == EPHEMERAL
    return data["content"]


def test_the_menu_is_synced_as_a_message_command(bot: BotProcess, standin: StandinThread) -> None:
    commands = {c["name"]: c for c in standin.records("commands")[0].payload["commands"]}
    assert commands[MENU]["type"] == 3 and not commands[MENU].get("options")
    assert commands["stylize"]["type"] == 1


def test_a_picture_in_the_chat_is_stylized_with_the_chosen_quality_and_preset(bot: BotProcess,
                                                                               standin: StandinThread) -> None:
    target = standin.post(BOB, [picture(standin, "photo.png", (96, 64))])
    token, menu = open_menu(standin, target)
    assert parts(menu) == ["quality", "preset"]  # one picture: nothing to choose there
    assert [o["value"] for o in select(menu, "quality")["options"]] == ["fast", "standard", "high", "medium", "slow"]
    assert chosen(menu, "quality") == ["standard"] and "**standard** quality" in menu["content"]
    assert "waves" in [o["value"] for o in select(menu, "preset")["options"]]
    assert f"/channels/{target['guild_id']}/{target['channel_id']}/{target['id']}" in menu["content"]

    menu = redrawn(standin, choose(standin, token, "quality", "fast"), token)
    assert chosen(menu, "quality") == ["fast"] and "**fast** quality" in menu["content"]
    start = choose(standin, token, "preset", "waves")
    assert callback(standin, start) == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert "Queued at position" in wait_original(standin, start, "Queued")
    result = result_message(standin, start)
    assert f"<@{ALICE['id']}>" in result["content"] and "preset *Waves*" in result["content"]
    assert decoded(standin, result["attachments"][0]).size == (48, 32)  # Bob's 96×64 photo at fast's 48 px
    again = choose(standin, token, "preset", "mosaic")  # the menu stays: each preset picked makes one image
    assert "preset *Mosaic*" in result_message(standin, again)["content"]


def test_several_pictures_and_an_embed_offer_a_choice_of_picture(bot: BotProcess, standin: StandinThread,
                                                                 workdir: Path) -> None:
    wide, tall = picture(standin, "wide.png", (96, 64)), picture(standin, "tall.png", (64, 96))
    linked = picture(standin, "linked.png", (80, 80))  # the media-proxy copy of a linked picture
    target = standin.post(BOB, [wide, tall], [picture_embed(linked, "https://example.invalid/linked.png")])
    token, menu = open_menu(standin, target)
    assert parts(menu) == ["image", "quality", "preset"]
    assert [o["label"] for o in select(menu, "image")["options"]] == ["1. wide.png", "2. tall.png", "3. linked.png"]
    assert chosen(menu, "image") == ["0"] and "picture 1 (`wide.png`) is chosen" in menu["content"]
    redrawn(standin, choose(standin, token, "quality", "fast"), token)

    for index, expected in (("1", (32, 48)), ("2", (48, 48))):
        menu = redrawn(standin, choose(standin, token, "image", index), token)
        assert chosen(menu, "image") == [index] and chosen(menu, "quality") == ["fast"]  # earlier choices kept
        result = result_message(standin, choose(standin, token, "preset", "waves"))
        assert decoded(standin, result["attachments"][0]).size == expected
    with sqlite3.connect(workdir / "data" / "menus.sqlite3") as db:  # the menu's state lives in the bot's store
        rows = db.execute("SELECT image, quality, message_id FROM picks WHERE user_id = ? AND message_id = ?",
                          (int(ALICE["id"]), int(target["id"]))).fetchall()
    assert rows == [(2, "fast", int(target["id"]))]


MESSAGES_REFUSED = [
    ("text only", lambda s: ([], []), "That message has no picture to stylize"),
    ("an embed without a picture", lambda s: ([], [picture_embed(None)]), "That message has no picture to stylize"),
    ("a text file", lambda s: ([s.attachment("notes.txt", b"hello", "text/plain")], []),
     "The content image `notes.txt` is not an image (text/plain)"),
    ("a file over the size cap", lambda s: ([s.attachment("huge.png", b"x", "image/png", 5_000_000)], []),
     "The content image is 5.0 MB; the limit is 0.2 MB."),
]


@pytest.mark.parametrize("case, content, expected", MESSAGES_REFUSED, ids=[case[0] for case in MESSAGES_REFUSED])
def test_a_message_without_a_usable_picture_gets_the_stylize_reply(bot: BotProcess, standin: StandinThread,
                                                                  case: str, content: Any, expected: str) -> None:
    attachments, embeds = content(standin)
    token = standin.message_command(MENU, standin.post(BOB, attachments, embeds), CAROL)
    reply = refusal(standin, token)
    assert reply.startswith("⚠️ ") and expected in reply, reply
    assert standin.followups(token) == []


def test_files_that_are_not_pictures_are_left_out_of_the_choice(bot: BotProcess, standin: StandinThread) -> None:
    notes = standin.attachment("notes.txt", b"hello", "text/plain")
    _, menu = open_menu(standin, standin.post(BOB, [notes, picture(standin, "photo.png", (96, 64))]))
    assert parts(menu) == ["quality", "preset"]
    assert "1 file(s) in the message are not usable pictures" in menu["content"]


def test_a_picture_that_cannot_be_decoded_gets_the_stylize_reply(bot: BotProcess, standin: StandinThread) -> None:
    broken = standin.attachment("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 20, "image/png")
    token, _ = open_menu(standin, standin.post(BOB, [broken]))
    start = choose(standin, token, "preset", "waves")
    assert "could not be read" in wait_original(standin, start, "⚠️")
    assert standin.followups(start) == []  # nothing queued, nothing public


def test_the_menu_answers_only_its_owner_in_its_channel(bot: BotProcess, standin: StandinThread) -> None:
    token, menu = open_menu(standin, standin.post(BOB, [picture(standin, "photo.png", (96, 64))]))
    preset = select(menu, "preset")["custom_id"]
    assert refusal(standin, standin.choose(menu, preset, ["waves"], CAROL)) == f"⚠️ {NOT_YOURS}"
    elsewhere = standin.choose(menu, preset, ["waves"], ALICE, place=SECOND_CHANNEL)
    assert refusal(standin, elsewhere) == f"⚠️ {ELSEWHERE}"

    forged = copy.deepcopy(menu)  # a client that rewrites the custom id: only an id, looked up, found nowhere
    select(forged, "preset")["custom_id"] = preset.replace(preset.split(":")[2], "0123456789abcdef")
    unknown_menu = standin.choose(forged, select(forged, "preset")["custom_id"], ["waves"])
    assert refusal(standin, unknown_menu) == f"⚠️ {EXPIRED}"
    for part, value in (("quality", "ultra"), ("quality", "https://example.invalid/x.png")):
        assert refusal(standin, choose(standin, token, part, value)) == f"⚠️ {NOT_OFFERED}"
    unknown = choose(standin, token, "preset", "nope")
    assert "There is no preset called `nope`" in wait_original(standin, unknown, "⚠️")
    assert chosen(standin.original(token), "quality") == ["standard"]  # the refused choices changed nothing


def test_open_menus_survive_a_restart_and_dms_follow_allow_dms(bot: BotProcess, standin: StandinThread) -> None:
    token, _ = open_menu(standin, standin.post(BOB, [picture(standin, "photo.png", (96, 64))]))
    in_dm, _ = open_menu(standin, standin.post(ALICE, [picture(standin, "mine.png", (96, 64))], dm=True), dm=True)
    bot.stop()  # the admin turns direct messages off
    bot.config.write_text(bot.config.read_text().replace("[discord]\n", "[discord]\nallow_dms = false\n", 1))
    standin.wait_for(lambda: not standin.connected(), 10, "the gateway connection to close")
    bot.start().wait_ready()

    redrawn(standin, choose(standin, token, "quality", "fast"), token)
    result = result_message(standin, choose(standin, token, "preset", "waves"))
    assert decoded(standin, result["attachments"][0]).size == (48, 32)
    refused = choose(standin, in_dm, "preset", "waves", dm=True)
    assert "works in servers only" in wait_original(standin, refused, "⚠️")
    new_in_dm = standin.message_command(MENU, standin.post(ALICE, [picture(standin, "b.png", (96, 64))], dm=True),
                                        dm=True)
    assert "works in servers only" in refusal(standin, new_in_dm)
    assert "Traceback" not in bot.output()  # every refusal in this module was a reply, never a crash
