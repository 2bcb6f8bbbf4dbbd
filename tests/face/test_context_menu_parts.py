"""The parts behind *Stylize image* on their own: the pictures read from a message, and the menus' store (real
SQLite in a temporary folder). The whole flow runs end to end in test_context_menu_e2e.py."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import discord

from bot.face.cogs.context_menu import message_images
from bot.face.menu_picks import ImageLink, Pick, PickStore, new_pick_id

PROXY = "https://media.discordapp.net/external/abc/https/example.com/"


def test_pictures_are_the_attachments_then_each_embed_picture_once_through_the_proxy() -> None:
    attachment = SimpleNamespace(url="https://cdn.discordapp.com/attachments/1/2/photo.png", filename="photo.png",
                                 content_type="image/png", size=1234)
    preview = discord.Embed.from_dict({"url": "https://example.com/page", "image": {
        "url": "https://example.com/big.png", "proxy_url": PROXY + "big.png"}, "thumbnail": {
        "url": "https://example.com/small.jpg", "proxy_url": PROXY + "small.jpg"}})
    repeated = discord.Embed.from_dict({"image": {"url": "https://example.com/big.png",
                                                  "proxy_url": PROXY + "big.png"}})
    text_only = discord.Embed.from_dict({"title": "no picture", "url": "https://example.com/"})
    message = SimpleNamespace(attachments=[attachment], embeds=[preview, repeated, text_only])
    assert message_images(message) == [
        ImageLink(attachment.url, "photo.png", "image/png", 1234),
        ImageLink(PROXY + "big.png", "big.png", None, 0),  # the proxy's copy, never example.com itself
        ImageLink(PROXY + "small.jpg", "small.jpg", None, 0),
    ]


def pick(created: float) -> Pick:
    images = (ImageLink("https://cdn.discordapp.com/a.png", "a.png", "image/png", 10),
              ImageLink(PROXY + "b.png", "b.png", None, 0))
    return Pick(new_pick_id(), 7, 8, 9, 10, images, 0, "standard", created)


def test_a_pick_and_its_choices_outlive_the_store_that_wrote_them(tmp_path: Path) -> None:
    store = PickStore(tmp_path)
    opened = pick(time.time())
    store.add(opened)
    store.choose(opened, image=1, quality="fast")
    store.close()
    again = PickStore(tmp_path).get(opened.id)
    assert again == Pick(opened.id, 7, 8, 9, 10, opened.images, 1, "fast", opened.created)
    assert again.chosen.filename == "b.png"


def test_picks_past_their_lifetime_are_gone(tmp_path: Path) -> None:
    store = PickStore(tmp_path, lifetime=60)
    old, fresh = pick(time.time() - 61), pick(time.time())
    store.add(old)
    assert store.get(old.id) is None  # expired: the menu says so
    store.add(fresh)  # adding clears expired rows
    assert store.db.execute("SELECT id FROM picks").fetchall() == [(fresh.id,)]
    assert store.get("0123456789abcdef") is None


def test_a_member_keeps_only_their_newest_menus_and_others_keep_theirs(tmp_path: Path) -> None:
    store = PickStore(tmp_path, max_open=3)
    theirs = replace(pick(time.time() - 5), user_id=99)
    store.add(theirs)
    burst = [pick(time.time() + n) for n in range(400)]
    closed = [store.add(opened) for opened in burst]
    assert closed[:3] == [0, 0, 0] and set(closed[3:]) == {1}
    assert {row[0] for row in store.db.execute("SELECT id FROM picks WHERE user_id = 7")} == {
        opened.id for opened in burst[-3:]}
    assert store.get(burst[0].id) is None and store.get(theirs.id) == theirs
