"""Per-server settings (bot/jobs/settings.py) on a real job store: SQLite in a temporary folder, opened again to
show what survives a restart. The admission rule that takes a server's limits is checked here too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.config import LimitsConfig, parse_config
from bot.errors import UserError
from bot.jobs.admission import Admission
from bot.jobs.settings import SERVER_WIDE, ServerSettings, SettingsError, clamp_limits
from bot.jobs.store import SCHEMA, JobStore
from tests.jobs.test_rules import Clock, active, lineup

GUILD, OTHER_GUILD = 11, 12
CHANNEL, OTHER_CHANNEL, THIRD_CHANNEL = 21, 22, 23
CONFIG = parse_config({"limits": {"max_size": 512, "max_jobs_per_user": 3, "cooldown_seconds": 10}}, Path("."))


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    opened = JobStore(tmp_path / "data")
    yield opened
    opened.close()


def settings_of(store: JobStore, presets: tuple[str, ...] = ("waves",)) -> ServerSettings:
    return ServerSettings(store.db, CONFIG, lambda name, guild_id: name in presets)


def test_a_channels_defaults_win_over_the_servers_which_win_over_the_config(store: JobStore) -> None:
    settings = settings_of(store)
    assert settings.settings_for(GUILD, CHANNEL).fill(None, None, None, style_given=False) == \
        (CONFIG.bot.default_quality, None, None)
    settings.put(GUILD, SERVER_WIDE, {"quality": "fast", "preserve_colors": "luminance"})
    settings.put(GUILD, CHANNEL, {"quality": "high", "preset": "waves"})
    assert settings.settings_for(GUILD, CHANNEL).fill(None, None, None, style_given=False) == \
        ("high", "waves", "luminance")
    assert settings.settings_for(GUILD, OTHER_CHANNEL).fill(None, None, None, style_given=False) == \
        ("fast", None, "luminance")
    here = settings.settings_for(GUILD, CHANNEL)
    assert here.fill("standard", None, "none", style_given=True) == ("standard", None, "none")  # the member's own win
    assert here.fill(None, "mosaic", None, style_given=False)[1] == "mosaic"
    # Another server, and direct messages, see none of it.
    assert settings.settings_for(OTHER_GUILD, CHANNEL).defaults.quality is None
    assert settings.settings_for(None, CHANNEL).fill(None, None, None, style_given=False) == \
        (CONFIG.bot.default_quality, None, None)


def test_values_survive_reopening_the_store_and_reset_forgets_them(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "data")
    settings_of(first).put(GUILD, SERVER_WIDE, {"quality": "fast", "spoiler": True})
    settings_of(first).put(GUILD, CHANNEL, {"preset": "waves"})
    first.close()
    again = JobStore(tmp_path / "data")
    try:
        settings = settings_of(again)
        assert settings.spoiler(GUILD) and not settings.spoiler(OTHER_GUILD) and not settings.spoiler(None)
        assert settings.settings_for(GUILD, CHANNEL).defaults.preset == "waves"
        settings.reset(GUILD, CHANNEL)
        assert settings.settings_for(GUILD, CHANNEL).defaults.preset is None
        assert settings.settings_for(GUILD, CHANNEL).defaults.quality == "fast"
        settings.reset(GUILD)
        assert settings.stored(GUILD).server == {} and not settings.spoiler(GUILD)
    finally:
        again.close()


def test_a_store_from_before_settings_gains_the_table(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "jobs.sqlite3") as old:
        old.executescript(SCHEMA.split("-- /nst-settings")[0])
        assert not old.execute("SELECT name FROM sqlite_master WHERE name = 'server_settings'").fetchall()
    store = JobStore(data)
    try:
        settings_of(store).put(GUILD, SERVER_WIDE, {"quality": "fast"})
        assert settings_of(store).stored(GUILD).server == {"quality": "fast"}
    finally:
        store.close()


def test_unknown_values_are_refused_and_nothing_of_the_request_is_kept(store: JobStore) -> None:
    settings = settings_of(store)
    with pytest.raises(SettingsError, match="Unknown quality `ultra`; choose one of"):
        settings.put(GUILD, SERVER_WIDE, {"preserve_colors": "luminance", "quality": "ultra"})
    with pytest.raises(SettingsError, match="no preset called `sunset`"):
        settings.put(GUILD, SERVER_WIDE, {"preset": "sunset"})
    with pytest.raises(SettingsError, match="Unknown colour mode `sepia`"):
        settings.put(GUILD, SERVER_WIDE, {"preserve_colors": "sepia"})
    assert settings.stored(GUILD).server == {}


def test_defaults_that_became_invalid_no_longer_count(store: JobStore) -> None:
    """A preset removed, or a quality level dropped from the config, after it was chosen: the next one down holds."""
    settings_of(store).put(GUILD, SERVER_WIDE, {"quality": "fast", "preset": "waves"})
    settings_of(store).put(GUILD, CHANNEL, {"quality": "high"})
    store.db.execute("UPDATE server_settings SET value = '\"gone\"' WHERE name = 'quality' AND channel_id = ?",
                     (CHANNEL,))
    later = settings_of(store, presets=())
    assert later.settings_for(GUILD, CHANNEL).defaults.quality == "fast"
    assert later.settings_for(GUILD, CHANNEL).defaults.preset is None


def test_limits_are_clamped_to_the_configs_caps_and_say_so() -> None:
    caps = CONFIG.limits
    clamped, notes = clamp_limits({"max_size": 2048, "max_jobs_per_user": 5, "cooldown_seconds": 2.0}, caps)
    assert clamped == {"max_size": 512, "max_jobs_per_user": 3, "cooldown_seconds": 10.0}
    assert notes == ["`max_size` 2048 is beyond the bot's cap; set to 512",
                     "`max_jobs_per_user` 5 is beyond the bot's cap; set to 3",
                     "`cooldown_seconds` 2 is beyond the bot's minimum; set to 10"]
    assert clamp_limits({"max_size": 256, "max_jobs_per_user": 1, "cooldown_seconds": 60.0}, caps) == \
        ({"max_size": 256, "max_jobs_per_user": 1, "cooldown_seconds": 60.0}, [])


def test_stored_limits_apply_and_a_lowered_cap_still_wins(store: JobStore) -> None:
    settings = settings_of(store)
    assert settings.put_limits(GUILD, {"max_size": 256, "max_jobs_per_user": 1}) == []
    here = settings.settings_for(GUILD, CHANNEL)
    assert (here.limits.max_size, here.limits.max_jobs_per_user, here.limits.cooldown_seconds) == (256, 1, 10)
    assert here.config.limits is here.limits and here.limits.max_queue == CONFIG.limits.max_queue
    assert settings.limits_for(GUILD) == here.limits and settings.limits_for(None) is CONFIG.limits
    stricter = parse_config({"limits": {"max_size": 128}}, Path("."))
    assert ServerSettings(store.db, stricter).settings_for(GUILD, CHANNEL).limits.max_size == 128


def test_closed_channels_are_refused_with_where_the_bot_answers(store: JobStore) -> None:
    settings = settings_of(store)
    settings.put(GUILD, CHANNEL, {"answers": False})
    with pytest.raises(UserError, match="turned the bot off in this channel; please use it in another channel"):
        settings.settings_for(GUILD, CHANNEL)
    settings.settings_for(GUILD, OTHER_CHANNEL)  # every other channel still answers
    settings.put(GUILD, SERVER_WIDE, {"answers": False})
    with pytest.raises(UserError, match="off in every channel of this server"):
        settings.settings_for(GUILD, OTHER_CHANNEL)
    settings.put(GUILD, OTHER_CHANNEL, {"answers": True})
    settings.put(GUILD, THIRD_CHANNEL, {"answers": True})
    with pytest.raises(UserError, match=f"works only in <#{OTHER_CHANNEL}>, <#{THIRD_CHANNEL}> on this server"):
        settings.settings_for(GUILD, CHANNEL)
    settings.settings_for(GUILD, THIRD_CHANNEL)
    settings.settings_for(None, CHANNEL)  # a direct message is no server's channel
    settings.answer_everywhere(GUILD)
    settings.settings_for(GUILD, CHANNEL)


@pytest.mark.parametrize("queued, refusal", [(1, r"\(the limit is 1\)"), (0, "Please wait 60 s between requests")])
def test_admission_applies_the_limits_in_force_where_the_request_came_from(queued: int, refusal: str) -> None:
    clock = Clock()
    gate = Admission(LimitsConfig(max_queue=5, max_jobs_per_user=3, cooldown_seconds=0.0),
                     lineup(*(active(f"j{n}", user_id=1) for n in range(queued))), {1: clock.now - 30}.get, clock)
    with gate.admit(1):  # the config's limits: 3 jobs per member, no cooldown
        pass
    with pytest.raises(UserError, match=refusal):
        gate.check(1, clock.now, LimitsConfig(max_queue=5, max_jobs_per_user=1, cooldown_seconds=60.0))
