"""The config file's validation, in-process (fast; tests/test_cli_errors.py checks the same messages through the
command line): each refusal names the setting and what it takes, ranges include their ends, relative paths are
the file's, and secrets come from the environment or a file without ever being shown. Found by mutation testing
(docs/mutation-report.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import (BUILTIN_PRESETS_DIR, MAX_SHARDS, Config, ConfigError, EngineConfig, Preset,
                        builtin_presets, default_config_path, discord_token, load_config, parse_config,
                        redis_password)
from nst_engine.cost import default_budget_mb


def parsed(tmp_path: Path, **sections) -> Config:
    return parse_config(sections, tmp_path)


def refusal(tmp_path: Path, **sections) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_config(sections, tmp_path)
    return str(refused.value)


def loaded(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture(autouse=True)
def no_secrets_or_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NST_LOG_LEVEL", "NST_CONFIG", "DISCORD_TOKEN", "DISCORD_TOKEN_FILE", "NST_REDIS_PASSWORD",
                 "NST_REDIS_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("section, key, low, high, shown", [
    ("limits", "max_queue", 1, 10_000, "from 1 to 10000"),
    ("storage", "retention_days", 0.01, 3650, "from 0.01 to 3650"),
    ("limits", "cooldown_seconds", 0, 86400, "from 0 to 86400"),
    ("metrics", "port", 1, 65535, "from 1 to 65535"),
    ("queue", "lost_after", 3, 3600, "from 3 to 3600"),
    ("discord", "heartbeat_timeout", 10, 600, "from 10 to 600"),
    ("limits", "max_upload_bytes", 1000, 1_000_000_000, "from 1000 to 1000000000"),  # whole, never 1e+09
    ("engine", "batch_size", 1, 16, "from 1 to 16"), ("bot", "progress_interval", 0.1, 3600, "from 0.1 to 3600"),
])
def test_a_range_includes_its_ends_and_a_value_past_them_is_refused_with_the_range(
        tmp_path: Path, section: str, key: str, low: float, high: float, shown: str) -> None:
    for edge in (low, high):
        assert getattr(getattr(parsed(tmp_path, **{section: {key: edge}}), section), key) == edge
    step = 0.001 if isinstance(low, float) else 1
    for outside in (low - step, high + step):
        assert refusal(tmp_path, **{section: {key: outside}}) == \
            f"[{section}] {key} must be {shown}, not {outside!r}."


def test_sections_and_keys_must_be_known_tables(tmp_path: Path) -> None:
    assert refusal(tmp_path, limit={}, bots={}) == "Unknown config section(s): bots, limit."
    assert refusal(tmp_path, limits={"max_queues": 1, "cooldown": 2}) == \
        "Unknown key(s) in [limits]: cooldown, max_queues."
    assert refusal(tmp_path, storage=3) == "[storage] must be a table."
    assert refusal(tmp_path, limits={"max_queue": "5"}) == "[limits] max_queue must be a whole number, not '5'."
    assert refusal(tmp_path, engine={"device": "tpu"}) == "[engine] device must be auto, cpu or cuda."
    assert [parsed(tmp_path, engine={"device": device}).engine.device for device in ("auto", "cpu", "cuda")] == \
        ["auto", "cpu", "cuda"]


def test_relative_paths_are_the_files_own_and_absolute_ones_stay(tmp_path: Path) -> None:
    config = parsed(tmp_path, storage={"data_dir": "state"}, engine={"weights": "w/vgg.pth"})
    assert config.storage.data_dir == tmp_path / "state"
    assert config.engine.weights == str(tmp_path / "w" / "vgg.pth")
    assert parsed(tmp_path, storage={"data_dir": "/srv/nst"}).storage.data_dir == Path("/srv/nst")
    assert parsed(tmp_path, storage={"data_dir": "~/nst"}).storage.data_dir == Path.home() / "nst"
    assert parsed(tmp_path).engine.weights == "" and parsed(tmp_path).storage.data_dir == tmp_path / "data"


def test_the_engines_memory_budget_is_the_configured_one_or_the_machines() -> None:
    assert EngineConfig(max_job_memory_mb=900).memory_budget_mb() == 900
    assert EngineConfig().memory_budget_mb() == default_budget_mb()


def test_the_log_level_is_the_environments_first_in_lower_case(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert parsed(tmp_path, bot={"log_level": " Warning "}).bot.log_level == "warning"
    monkeypatch.setenv("NST_LOG_LEVEL", "DEBUG")
    assert parsed(tmp_path, bot={"log_level": "error"}).bot.log_level == "debug"
    monkeypatch.setenv("NST_LOG_LEVEL", "chatty")
    assert refusal(tmp_path) == ("[bot] log_level (or NST_LOG_LEVEL) must be one of debug, info, warning, error, "
                                 "not 'chatty'.")


def test_the_default_quality_must_be_a_level(tmp_path: Path) -> None:
    assert refusal(tmp_path, bot={"default_quality": "ultra"}) == \
        "[bot] default_quality 'ultra' is not one of: fast, standard, high."
    config = parsed(tmp_path, bot={"default_quality": "ultra"}, quality={"ultra": {"size": 900, "iterations": 9}})
    assert config.bot.default_quality == "ultra" and list(config.quality)[-1] == "ultra"


def test_a_quality_level_keeps_what_it_does_not_change_and_a_new_one_needs_both_numbers(tmp_path: Path) -> None:
    fast = parsed(tmp_path, quality={"fast": {"size": 300}}).quality["fast"]
    assert (fast.size, fast.iterations, fast.description) == (300, 45, "quick look, about 20 s on a 2-core CPU")
    fast = parsed(tmp_path, quality={"fast": {"iterations": 30}}).quality["fast"]
    assert (fast.size, fast.iterations) == (256, 30)
    new = parsed(tmp_path, quality={"tiny": {"size": 16, "iterations": 5000, "description": "d"}}).quality["tiny"]
    assert (new.name, new.size, new.iterations, new.description) == ("tiny", 16, 5000, "d")
    assert parsed(tmp_path, quality={"big": {"size": 4096, "iterations": 1}}).quality["big"].description == ""
    size, iterations = "size must be a whole number from 16 to 4096.", "iterations must be a whole number from 1 to 5000."
    for values, message in [({"iterations": 5}, size), ({"size": 64}, iterations), ({"size": 15, "iterations": 5}, size),
                            ({"size": 4097, "iterations": 5}, size), ({"size": 64.0, "iterations": 5}, size),
                            ({"size": 64, "iterations": 0}, iterations), ({"size": 64, "iterations": 5001}, iterations)]:
        assert refusal(tmp_path, quality={"new": values}) == f"[quality.new] {message}"
    for wrong in ({"size": 64, "iterations": 5, "steps": 3}, "fast"):
        assert refusal(tmp_path, quality={"new": wrong}) == "[quality.new] takes size, iterations and description."


def test_presets_are_checked_one_by_one(tmp_path: Path) -> None:
    (mine,) = parsed(tmp_path, presets=[{"name": " Mine ", "file": "art/mine.png", "sha256": "AB"}]).presets
    assert (mine.name, mine.title, mine.artist, mine.file, mine.sha256, mine.url) == \
        ("mine", "mine", "", tmp_path / "art/mine.png", "ab", "")
    (web,) = parsed(tmp_path, presets=[{"name": "web", "title": "Web", "artist": "A", "url": "https://x/y.PNG"}]).presets
    assert (web.file, web.label, web.url, web.sha256) == (None, "Web — A", "https://x/y.PNG", "")
    assert parsed(tmp_path, presets=[]).presets == ()
    for entries, message in [
        ({"name": "a"}, "[[presets]] must be an array of tables."),
        (["a"], "Each [[presets]] entry must be a table."),
        ([{"name": "a", "file": "a.png", "colour": 1, "by": 2}], "Unknown key(s) in preset 'a': by, colour."),
        ([{"name": "-a", "file": "a.png"}], "Preset name '-a' must be 1–32 lowercase letters, digits or dashes."),
        ([{"file": "a.png"}], "Preset name '' must be 1–32 lowercase letters, digits or dashes."),
        ([{"name": "a" * 33, "file": "a.png"}], f"Preset name {'a' * 33!r} must be 1–32 lowercase"),
        ([{"name": "a", "file": "a.png"}, {"name": "A", "url": "https://x/a.png"}], "Preset 'a' is defined twice."),
        ([{"name": "a", "file": "a.png", "url": "https://x/a.png"}], "Preset 'a' needs exactly one of file or url."),
        ([{"name": "a"}], "Preset 'a' needs exactly one of file or url."),
    ]:
        assert refusal(tmp_path, presets=entries).startswith(message)


def test_a_presets_image_is_its_file_or_a_cache_file_named_by_its_url(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    assert Preset("a", "A", file=Path("/x/a.png"), url="https://x/b.gif").path == Path("/x/a.png")
    assert Preset("b", "B", url="https://x/b.WebP?size=2").path == tmp_path / "presets" / "b.webp"
    assert Preset("c", "C", url="https://x/c").path == tmp_path / "presets" / "c.jpg"
    assert (Preset("d", "D").label, Preset("d", "D", "E").label) == ("D", "D — E")


def test_the_built_in_presets_and_looking_one_up(tmp_path: Path) -> None:
    shipped = builtin_presets()
    assert [(p.name, p.title, p.artist) for p in shipped] == [
        ("mosaic", "Mosaic", "nst-bot"), ("waves", "Waves", "nst-bot"), ("embers", "Embers", "nst-bot"),
        ("cubist", "Cubist Shards", "nst-bot"), ("pointillist", "Pointillist Dots", "nst-bot")]
    assert all(p.file == BUILTIN_PRESETS_DIR / f"{p.name}.png" for p in shipped)
    assert parsed(tmp_path).presets == shipped
    assert parsed(tmp_path).preset(" Waves ").title == "Waves" and parsed(tmp_path).preset("nope") is None


def test_where_the_config_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_config_path() is None
    assert load_config().presets == builtin_presets() and load_config().path is None
    (tmp_path / "config.toml").write_text("[limits]\nmax_queue = 3\n")
    assert default_config_path() == Path("config.toml") and load_config().limits.max_queue == 3
    monkeypatch.setenv("NST_CONFIG", str(tmp_path / "other.toml"))
    assert default_config_path() == tmp_path / "other.toml"
    (tmp_path / "other.toml").write_text("[limits]\nmax_queue = 4\n")
    config = load_config()
    assert config.limits.max_queue == 4 and config.path == tmp_path / "other.toml"


@pytest.mark.parametrize("make, message", [
    (None, "does not exist (copy config.example.toml)."),
    (lambda path: path.mkdir(), "is a folder; name the .toml file itself."),
    (lambda path: path.write_bytes(b"\xff[limits]\n"), "is not UTF-8 text; save it as UTF-8."),
    (lambda path: path.write_text("[limits\n"), "is not valid TOML: "),
    (lambda path: path.symlink_to(path), f"too many levels of symbolic links (user id {os.getuid()})."),
])
def test_a_config_file_that_cannot_be_read_says_why(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "config.toml"
    if make:
        make(path)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert message in str(refused.value) and repr(str(path)) in str(refused.value)


def test_relative_paths_in_a_file_are_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.toml").write_text('[storage]\ndata_dir = "state"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/config.toml")
    assert config.storage.data_dir == tmp_path / "conf" / "state" and config.path == Path("conf/config.toml")


@pytest.mark.parametrize("shards, ids, expected", [
    ("off", [], ("off", ())), (" AUTO ", [], ("auto", ())), (1, [], (1, ())), (MAX_SHARDS, [], (MAX_SHARDS, ())),
    (4, [3, 0], (4, (3, 0))), (2, [1, 0], (2, (1, 0))),  # one process may name every shard
])
def test_shard_settings_that_are_accepted(tmp_path: Path, shards, ids: list[int], expected: tuple) -> None:
    discord = parsed(tmp_path, discord={"shards": shards, "shard_ids": ids}).discord
    assert (discord.shards, discord.shard_ids) == expected


@pytest.mark.parametrize("shards, ids, wrong_ids", [
    (0, [], False), (MAX_SHARDS + 1, [], False), ("some", [], False), ("some", [0], False),
    (2, [2], True), (2, [1, 1], True), ("off", [0], True), ("auto", [1], True),
])
def test_shard_settings_that_are_refused_say_which(tmp_path: Path, shards, ids: list[int], wrong_ids: bool) -> None:
    message = refusal(tmp_path, discord={"shards": shards, "shard_ids": ids})
    if wrong_ids:
        assert message == ("[discord] shard_ids must name shards of this process once each, from 0 to shards - 1 "
                           f"(shards: all the bot's processes' count); not {ids} of shards = {shards!r}.")
    else:
        assert message == f'[discord] shards must be "off", "auto" or a number of shards from 1 to {MAX_SHARDS}, ' \
                          f"not {shards!r}."


def test_server_ids_are_positive_numbers_quoted_or_not(tmp_path: Path) -> None:
    assert parsed(tmp_path, discord={"guild_ids": [" 12 ", 34, 1]}).discord.guild_ids == (12, 34, 1)
    assert refusal(tmp_path, discord={"guild_ids": 12}) == \
        "[discord] guild_ids must be a list of server ids, e.g. [123456789012345678]."
    for wrong in (0, -3, True, "x12", "1" * 21, 1.5):
        assert refusal(tmp_path, discord={"guild_ids": [5, wrong]}) == (
            "[discord] guild_ids must list server ids (numbers such as 123456789012345678, from Discord's Copy "
            f"Server ID), not {wrong!r}.")


@pytest.mark.parametrize("url", ["redis://redis/0", "redis://redis:6379", "rediss://user@redis:6380/",
                                 "redis://redis:6379/12"])
def test_redis_urls_that_are_accepted(tmp_path: Path, url: str) -> None:
    assert parsed(tmp_path, queue={"backend": "redis", "redis_url": url}).queue.redis_url == url


@pytest.mark.parametrize("url", ["redis://redis:0/0", "redis://:6379/0", "redis://redis:6379/0/1", "unix:///r.sock"])
def test_redis_urls_that_are_refused(tmp_path: Path, url: str) -> None:
    assert refusal(tmp_path, queue={"redis_url": url}) == \
        "[queue] redis_url must look like redis://host:port/db (or rediss:// for TLS)."


def test_the_local_backend_may_name_a_redis_url_and_a_user_is_not_a_password(tmp_path: Path) -> None:
    assert parsed(tmp_path, queue={"redis_url": "redis://redis:6379/0"}).queue.backend == "local"
    assert parsed(tmp_path, queue={"backend": "instant"}).queue.backend == "instant"
    for url in ("redis://u:p@redis:6379/0", "redis://u:p@redis:6379/0?via=redis://x"):  # "://" later on too
        assert refusal(tmp_path, queue={"redis_url": url}) == (
            "[queue] redis_url must not hold a password: set NST_REDIS_PASSWORD or NST_REDIS_PASSWORD_FILE instead.")
    assert refusal(tmp_path, queue={"backend": "celery"}) == "[queue] backend must be one of: local, redis, instant."
    assert refusal(tmp_path, queue={"backend": "redis"}) == \
        '[queue] backend = "redis" needs [queue] redis_url (redis://host:port/db).'


def test_the_token_comes_from_the_environment_or_a_file_and_must_be_one_word(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert discord_token() is None
    secret = tmp_path / "token"
    secret.write_text("  file.token  \n")
    monkeypatch.setenv("DISCORD_TOKEN_FILE", str(secret))
    assert discord_token() == "file.token"
    monkeypatch.setenv("DISCORD_TOKEN", " env.token ")
    assert discord_token() == "env.token"  # the variable wins over the file
    monkeypatch.delenv("DISCORD_TOKEN")
    secret.write_text("")
    assert discord_token() is None
    for text, why in (("sekrit\ntwo", "holds more than one line"), ("sekrit\rtwo", "holds more than one line"),
                      ("sekrit two", "contains spaces or control characters"), ("sekrit\x07", "contains spaces")):
        secret.write_text(text)
        with pytest.raises(ConfigError) as refused:
            discord_token()
        assert str(refused.value).startswith(f"DISCORD_TOKEN_FILE {str(secret)!r} {why}") and "sekrit" not in \
            str(refused.value).replace(str(secret), "")
    monkeypatch.setenv("DISCORD_TOKEN", "a\tb")
    with pytest.raises(ConfigError, match="^DISCORD_TOKEN contains spaces"):
        discord_token()
    monkeypatch.setenv("DISCORD_TOKEN", "a\rb")  # a file's \r is read as a new line; a variable keeps it
    with pytest.raises(ConfigError, match="^DISCORD_TOKEN holds more than one line"):
        discord_token()


def test_a_secret_file_that_cannot_be_read_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NST_REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as missing:
        redis_password()
    assert str(missing.value) == f"Cannot read NST_REDIS_PASSWORD_FILE {str(tmp_path / 'missing')!r}: " \
                                 f"{os.strerror(2)}."
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    monkeypatch.setenv("NST_REDIS_PASSWORD_FILE", str(tmp_path / "binary"))
    with pytest.raises(ConfigError) as binary:
        redis_password()
    assert str(binary.value) == f"Cannot read NST_REDIS_PASSWORD_FILE {str(tmp_path / 'binary')!r}: not UTF-8 text."
    (tmp_path / "password").write_text("s3cret\n")
    monkeypatch.setenv("NST_REDIS_PASSWORD_FILE", str(tmp_path / "password"))
    assert redis_password() == "s3cret"


def test_every_bounded_settings_default_lies_in_its_range() -> None:
    from dataclasses import fields as fields_of

    from bot.config import BotConfig, DiscordConfig, LimitsConfig, MetricsConfig, QueueConfig, StorageConfig

    checked = 0
    for section in (DiscordConfig, EngineConfig, StorageConfig, LimitsConfig, BotConfig, QueueConfig, MetricsConfig):
        for setting in fields_of(section):
            if "range" in setting.metadata:
                low, high = setting.metadata["range"]
                assert isinstance(setting.default, (int, float)) and low <= setting.default <= high, setting.name
                checked += 1
    assert checked == 28
    assert (LimitsConfig().max_queue, StorageConfig().retention_days, MetricsConfig().port) == (20, 7.0, 9464)
