"""Presets added with ``/preset add`` belong to their server, end to end: the real ``nst-bot run`` against the
Discord stand-in, with two servers (the bot is in both) and a direct message. Admins of one server can neither
see, use, overwrite nor remove another server's presets; the configured presets stay shared; each server's
count is capped. The last tests check the library's own rules without a bot process."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.config import parse_config
from bot.intake.presets import PresetError, PresetLibrary, StylePreset
from tests.face.discord_standin import BOB, CAROL, GUILD_ID, MANAGE_GUILD, OTHER_GUILD_ID, StandinThread
from tests.face.harness import BotProcess, callback, decoded, png_bytes, result_message, wait_original, write_config
from tests.conftest import make_content, make_style

pytestmark = pytest.mark.timeout(240)

CAP = 2  # [limits] max_presets_per_server for this bot
BUILTIN = {"mosaic", "waves", "embers", "cubist", "pointillist"}


@pytest.fixture(scope="module")
def bot(standin: StandinThread, workdir: Path, vgg_weights: Path) -> BotProcess:
    config = write_config(workdir, standin, vgg_weights, limits={"max_presets_per_server": CAP})
    process = BotProcess(config, workdir / "bot.log").start().wait_ready()
    yield process
    process.stop()


def add(standin: StandinThread, guild: int, name: str, title: str, seed: int, who: dict[str, Any] = CAROL) -> str:
    """``/preset add`` by an admin of ``guild``; returns the reply's text."""
    image = standin.attachment(f"{name}.png", png_bytes(make_style(seed=seed)))
    token = standin.command("preset", {"name": name, "image": image, "title": title}, who, subcommand="add",
                            permissions=MANAGE_GUILD, guild_id=guild)
    return wait_original(standin, token, "preset")


def remove(standin: StandinThread, guild: int, name: str) -> str:
    token = standin.command("preset", {"name": name}, CAROL, subcommand="remove", permissions=MANAGE_GUILD,
                            guild_id=guild)
    return callback(standin, token)["data"]["content"]


def offered(standin: StandinThread, text: str = "", *, guild: int = GUILD_ID, dm: bool = False) -> dict[str, str]:
    """What ``/stylize preset:`` autocomplete offers there: value → label."""
    token = standin.autocomplete("stylize", "preset", text, dm=dm, guild_id=guild)
    return {c["value"]: c["name"] for c in callback(standin, token)["data"]["choices"]}


def removable(standin: StandinThread, guild: int) -> list[str]:
    token = standin.autocomplete("preset", "name", "", subcommand="remove", guild_id=guild)
    return [c["value"] for c in callback(standin, token)["data"]["choices"]]


def stylize(standin: StandinThread, who: dict[str, Any], preset: str, **where: Any) -> str:
    """``/stylize`` with a preset, in a server (``guild_id=``) or a direct message (``dm=True``)."""
    content = standin.attachment("photo.png", png_bytes(make_content()))
    return standin.command("stylize", {"content": content, "preset": preset, "quality": "fast"}, who, **where)


def styles(standin: StandinThread, *, guild: int = GUILD_ID, dm: bool = False) -> dict[str, Any]:
    token = standin.command("styles", guild_id=guild, dm=dm)
    return standin.wait_for(lambda: standin.followups(token), 30, "the gallery")[0]


def test_each_server_has_its_own_presets_under_the_same_name(bot: BotProcess, standin: StandinThread,
                                                             workdir: Path) -> None:
    assert "Added preset `sunset` (Sunset A)" in add(standin, GUILD_ID, "sunset", "Sunset A", seed=11)
    assert "Added preset `sunset` (Sunset B)" in add(standin, OTHER_GUILD_ID, "Sunset", "Sunset B", seed=12, who=BOB)
    assert "Added preset `only-a`" in add(standin, GUILD_ID, "only-a", "Only A", seed=13)
    presets = workdir / "data" / "presets"
    assert sorted(p.name for p in (presets / str(GUILD_ID)).iterdir()) == ["index.json", "only-a.png", "sunset.png"]
    assert sorted(p.name for p in (presets / str(OTHER_GUILD_ID)).iterdir()) == ["index.json", "sunset.png"]
    assert (presets / str(GUILD_ID) / "sunset.png").read_bytes() != \
        (presets / str(OTHER_GUILD_ID) / "sunset.png").read_bytes()

    assert offered(standin, "sun", guild=GUILD_ID) == {"sunset": "Sunset A"}
    assert offered(standin, "sun", guild=OTHER_GUILD_ID) == {"sunset": "Sunset B"}
    assert set(offered(standin, guild=OTHER_GUILD_ID)) == BUILTIN | {"sunset"}  # never server A's `only-a`
    assert set(offered(standin, dm=True)) == BUILTIN  # a direct message sees the shared presets only
    assert removable(standin, GUILD_ID) == ["sunset", "only-a"] and removable(standin, OTHER_GUILD_ID) == ["sunset"]


def test_an_existing_name_is_refused_not_overwritten(bot: BotProcess, standin: StandinThread, workdir: Path) -> None:
    image = workdir / "data" / "presets" / str(GUILD_ID) / "sunset.png"
    before = image.read_bytes()
    reply = add(standin, GUILD_ID, "sunset", "Another sunset", seed=21)
    assert "already has a preset called `sunset`" in reply and "/preset remove name:sunset" in reply
    assert image.read_bytes() == before and offered(standin, "sun") == {"sunset": "Sunset A"}
    assert "is a preset from the config file" in add(standin, GUILD_ID, "waves", "Not mine", seed=22)


def test_styles_shows_only_the_shared_and_this_servers_presets(bot: BotProcess, standin: StandinThread) -> None:
    here, there, direct = (styles(standin, guild=GUILD_ID), styles(standin, guild=OTHER_GUILD_ID),
                           styles(standin, dm=True))
    assert "**Added on this server:** `sunset`, `only-a`" in here["content"]
    assert "**Added on this server:** `sunset`" in there["content"] and "only-a" not in there["content"]
    assert "`waves`" in direct["content"] and "sunset" not in direct["content"]
    sheets = [decoded(standin, message["attachments"][0]) for message in (here, there, direct)]
    assert len({sheet.tobytes() for sheet in sheets}) == 3  # three different galleries, none cached across servers
    assert sheets[0].size == sheets[1].size == sheets[2].size  # 7, 6 and 5 thumbnails: two rows of four each
    help_text = callback(standin, standin.command("help", dm=True))["data"]["content"]
    assert "`pointillist`" in help_text and "sunset" not in help_text


def test_stylize_uses_only_this_servers_presets(bot: BotProcess, standin: StandinThread) -> None:
    elsewhere = stylize(standin, CAROL, "only-a", guild_id=OTHER_GUILD_ID)
    assert "no preset called `only-a`" in wait_original(standin, elsewhere, "⚠️")
    direct = stylize(standin, CAROL, "sunset", dm=True)
    assert "no preset called `sunset`" in wait_original(standin, direct, "⚠️")
    token = stylize(standin, BOB, "sunset", guild_id=OTHER_GUILD_ID)
    assert "preset *Sunset B*" in result_message(standin, token)["content"]


def test_remove_only_touches_the_callers_server(bot: BotProcess, standin: StandinThread, workdir: Path) -> None:
    presets = workdir / "data" / "presets"
    assert "has no added preset called `only-a`" in remove(standin, OTHER_GUILD_ID, "only-a")
    assert (presets / str(GUILD_ID) / "only-a.png").is_file()
    assert "Removed preset `sunset`" in remove(standin, OTHER_GUILD_ID, "sunset")
    assert not (presets / str(OTHER_GUILD_ID) / "sunset.png").exists()
    assert (presets / str(GUILD_ID) / "sunset.png").is_file() and offered(standin, "sun") == {"sunset": "Sunset A"}
    assert offered(standin, "sun", guild=OTHER_GUILD_ID) == {}


def test_each_server_may_add_only_so_many(bot: BotProcess, standin: StandinThread) -> None:
    assert removable(standin, GUILD_ID) == ["sunset", "only-a"]  # server A is at the cap
    reply = add(standin, GUILD_ID, "third", "Third", seed=31)
    assert f"already has {CAP} added presets, the most the bot allows ({CAP})" in reply
    assert "third" not in offered(standin, "third")
    assert "Added preset `third`" in add(standin, OTHER_GUILD_ID, "third", "Third", seed=31, who=BOB)
    assert "Added preset `fourth`" in add(standin, OTHER_GUILD_ID, "fourth", "Fourth", seed=32, who=BOB)
    assert f"({CAP})" in add(standin, OTHER_GUILD_ID, "fifth", "Fifth", seed=33, who=BOB)


def test_preset_commands_refuse_direct_messages(bot: BotProcess, standin: StandinThread) -> None:
    image = standin.attachment("dm.png", png_bytes(make_style(seed=41)))
    token = standin.command("preset", {"name": "dm", "image": image}, CAROL, subcommand="add",
                            permissions=MANAGE_GUILD, dm=True)
    assert "Only members with Manage Server" in wait_original(standin, token, "⚠️")
    assert set(offered(standin, dm=True)) == BUILTIN


# The library on its own (no bot process) -------------------------------------------------------------------

def library_in(tmp_path: Path, cap: int = CAP) -> PresetLibrary:
    return PresetLibrary(parse_config({"storage": {"data_dir": str(tmp_path / "data")},
                                       "limits": {"max_presets_per_server": cap}}, tmp_path))


def test_simultaneous_adds_of_one_name_keep_exactly_one(tmp_path: Path) -> None:
    library = library_in(tmp_path)
    images = [make_style(seed=seed) for seed in range(8)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda image: _try(library.add, "race", "Race", image, guild_id=5), images))
    assert sum(isinstance(o, StylePreset) for o in outcomes) == 1
    assert all("already has a preset called `race`" in str(o) for o in outcomes if isinstance(o, PresetError))
    assert [p.name for p in library_in(tmp_path).all(5) if p.custom] == ["race"]


def test_presets_added_before_they_belonged_to_a_server_are_not_shared(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    shared = tmp_path / "data" / "presets"
    shared.mkdir(parents=True)
    make_style().save(shared / "old.png")
    (shared / "index.json").write_text(json.dumps([{"name": "old", "title": "Old", "artist": ""}]))
    library = library_in(tmp_path)
    assert library.get("old", 5) is None and library.get("old") is None
    assert "no longer offered" in caplog.text and "/preset add" in caplog.text


def test_adding_presets_can_be_turned_off(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="turned off"):
        library_in(tmp_path, cap=0).add("x", "X", make_style(), guild_id=5)


def _try(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except PresetError as error:
        return error
