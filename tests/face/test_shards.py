"""Discord sharding (``[discord] shards``): the real ``nst-bot run`` opens one gateway connection per shard
against the stand-in, which, like Discord, delivers each server's events only on the shard that owns it
(``(guild_id >> 22) % shards``). A ``/stylize`` from a server on each shard is answered."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

import pytest

from bot.config import ConfigError, parse_config
from tests.face.discord_standin import ALICE, BOB, GUILD_ID, OTHER_GUILD_ID, StandinThread, shard_of
from tests.face.harness import BotProcess, decoded, images, result_message, write_config

pytestmark = pytest.mark.timeout(240)


def test_the_two_stand_in_servers_sit_on_different_shards() -> None:
    assert {shard_of(GUILD_ID, 2), shard_of(OTHER_GUILD_ID, 2)} == {0, 1}


@pytest.mark.parametrize("shards", [pytest.param("auto", marks=pytest.mark.slow), 2])  # "auto": the slow run
def test_a_sharded_bot_serves_a_server_on_each_shard(shards: str | int, standin: StandinThread, workdir: Path,
                                                   vgg_weights: Path) -> None:
    standin.recommend_shards(2)  # what "auto" learns from GET /gateway/bot
    identified_before = len(standin.records("identify"))
    folder = workdir / f"shards-{shards}"
    folder.mkdir()
    setting = f'"{shards}"' if isinstance(shards, str) else shards
    config = write_config(folder, standin, vgg_weights, discord=f"shards = {setting}")
    bot = BotProcess(config, folder / "bot.log").start()
    try:
        bot.wait_ready()
        identifies = standin.records("identify")[identified_before:]
        assert sorted(record.payload["shard"] for record in identifies) == [[0, 2], [1, 2]]
        for guild_id, who in ((GUILD_ID, ALICE), (OTHER_GUILD_ID, BOB)):
            content, style = images(standin)
            token = standin.command("stylize", {"content": content, "style": style, "quality": "fast"}, who,
                                    guild_id=guild_id)
            assert decoded(standin, result_message(standin, token)["attachments"][0]).size == (48, 32)
        log = bot.output()
        assert "shard 0 of 2 connected" in log and "shard 1 of 2 connected" in log
        assert "shard 0 of 2 ready with 1 guild(s)" in log and "shard 1 of 2 ready with 1 guild(s)" in log
        assert wait_for(lambda: "shards 2 of 2 connected" in healthcheck(config))
    finally:
        assert bot.stop() == 0


def test_an_unsharded_bot_identifies_once_without_a_shard(standin: StandinThread, workdir: Path,
                                                          vgg_weights: Path) -> None:
    standin.recommend_shards(1)
    before = len(standin.records("identify"))
    folder = workdir / "unsharded"
    folder.mkdir()
    bot = BotProcess(write_config(folder, standin, vgg_weights), folder / "bot.log").start()
    try:
        bot.wait_ready()
        assert [record.payload["shard"] for record in standin.records("identify")[before:]] == [None]
        assert "shard 0 of" not in bot.output()
    finally:
        bot.stop()


@pytest.mark.parametrize("value, parsed", [('"auto"', "auto"), ('"Auto"', "auto"), ("3", 3), ('"off"', "off")])
def test_shards_setting_accepts_off_auto_or_a_count(value: str, parsed: str | int) -> None:
    assert parse_config({"discord": {"shards": _toml(value)}}, Path(".")).discord.shards == parsed


@pytest.mark.parametrize("value", ["0", '"3"', '"many"', "5000", "2.5", "true"])
def test_shards_setting_refuses_anything_else(value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[discord\] shards must be"):
        parse_config({"discord": {"shards": _toml(value)}}, Path("."))


def healthcheck(config: Path) -> str:
    """What ``nst-bot healthcheck`` prints for the bot of this config."""
    return subprocess.run([sys.executable, "-m", "bot", "healthcheck", "--config", str(config)],
                          capture_output=True, text=True, timeout=30).stdout


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll ``condition`` (the heartbeat is written every 2 s)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _toml(value: str) -> object:
    return tomllib.loads(f"shards = {value}")["shards"]
