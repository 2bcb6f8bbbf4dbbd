"""The bot's torch-free parts on their own: option clamping, preset names, the job store, the health check."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config, parse_config
from bot.intake.download import RequestError
from bot.intake.options import build_options
from bot.intake.presets import PresetError, PresetLibrary, sanitize_name
from bot.jobs.model import DONE, QUEUED, Job, new_job_id
from bot.jobs.store import JobStore
from bot.ops.health import check_health, heartbeat_path
from nst_engine.options import StylizeOptions
from tests.conftest import REPO, make_style


def config_with(tmp_path: Path, **limits: int):
    return parse_config({"storage": {"data_dir": str(tmp_path / "data")}, "limits": limits,
                         "quality": {"fast": {"size": 256, "iterations": 100}}}, tmp_path)


def test_the_bot_process_modules_never_import_torch() -> None:
    code = ("import sys, bot.face.app, bot.face.cogs.stylize, bot.face.cogs.presets, bot.face.cogs.info, bot.work.local; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_options_are_clamped_by_quality_and_admin_caps(tmp_path: Path) -> None:
    config = config_with(tmp_path, max_size=200, max_iterations=80)
    options, notes = build_options(config, "fast", size=1000, strength=2.5, preserve_colors="luminance")
    assert (options.size, options.iterations, options.strength, options.preserve_colors) == (200, 80, 2.5, "luminance")
    assert notes == ["size 1000 px capped to 200 px for fast quality"]
    assert options.preview_every >= 1 and options.preview_size == 160
    small, notes = build_options(config, None, size=100)
    assert small.size == 100 and notes == []
    with pytest.raises(RequestError, match="Unknown quality `ultra`"):
        build_options(config, "ultra")
    with pytest.raises(RequestError, match="Strength must be between"):
        build_options(config, "fast", strength=0.0)


def test_preset_names_never_shape_a_path(tmp_path: Path) -> None:
    assert sanitize_name("  Starry Night!! ") == "starry-night"
    assert sanitize_name("../../etc/passwd") == "etc-passwd"
    with pytest.raises(PresetError):
        sanitize_name("../..//")
    library = PresetLibrary(config_with(tmp_path))
    added = library.add("../Up There", "Up", make_style(), guild_id=7)
    assert added.path == tmp_path / "data" / "presets" / "7" / "up-there.png" and added.path.is_file()
    reloaded = PresetLibrary(config_with(tmp_path))  # from disk
    assert [p.name for p in reloaded.search("up", 7)] == ["up-there"]
    with pytest.raises(PresetError, match="from the config file"):
        library.remove("waves", guild_id=7)
    library.remove("up-there", guild_id=7)
    assert not added.path.exists() and library.get("up-there", 7) is None


def test_the_store_keeps_jobs_and_purges_old_ones(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    old, fresh = (Job(new_job_id(), 1, "a", 2, 3, "preset", "fast", StylizeOptions(size=64, style_weights=(1.0, 2.0))) for _ in range(2))
    old.created, old.state = time.time() - 10 * 86400, DONE
    for job in (old, fresh):
        store.add(job)
        store.job_dir(job.id).mkdir(parents=True)
    fresh.status_message_id = 42
    store.save(fresh, "status_message_id")
    reopened = JobStore(tmp_path)
    assert reopened.get(fresh.id) == fresh and [j.id for j in reopened.active()] == [fresh.id]
    assert reopened.purge(retention_days=7) == 1
    assert reopened.get(old.id) is None and not store.job_dir(old.id).exists() and store.job_dir(fresh.id).exists()
    assert reopened.get(fresh.id).state == QUEUED
    with pytest.raises(ValueError):
        store.job_dir("../x")


def test_healthcheck_needs_a_fresh_heartbeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path)
    assert check_health(config) == 1 and "no heartbeat" in capsys.readouterr().out
    path = heartbeat_path(config)
    path.parent.mkdir(parents=True)
    beat = {"time": time.time() - 120, "connected": True, "lag_ms": {"p99": 1.0}}
    path.write_text(json.dumps(beat))
    assert check_health(config) == 1 and "120 s old" in capsys.readouterr().out
    path.write_text(json.dumps({**beat, "time": time.time()}))
    assert check_health(config) == 0


def test_healthcheck_names_the_shards_that_are_not_connected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path)
    path = heartbeat_path(config)
    path.parent.mkdir(parents=True)
    beat = {"time": time.time(), "connected": True, "lag_ms": {"p99": 1.0}}
    path.write_text(json.dumps({**beat, "shards": {"0": True, "1": False, "2": True}}))
    assert check_health(config) == 0  # it reconnects by itself: said, not a reason to restart the bot
    assert "connected to Discord, shards 2 of 3 connected (shard 1 is not)," in capsys.readouterr().out
    path.write_text(json.dumps({**beat, "shards": {"0": True, "1": True}}))
    assert check_health(config) == 0 and ", shards 2 of 2 connected, loop lag" in capsys.readouterr().out
    path.write_text(json.dumps(beat))  # an unsharded bot's heartbeat
    assert check_health(config) == 0 and "shards" not in capsys.readouterr().out


def test_the_example_config_loads_and_documents_every_key() -> None:
    example = REPO / "config.example.toml"
    config = load_config(example)
    text = example.read_text()
    for section in ("discord", "engine", "storage", "limits", "bot"):
        for spec in fields(getattr(config, section)):
            key = spec.name
            if spec.metadata.get("parsed"):  # filled by the parser from a key's table form (LimitsConfig.by_level)
                continue
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"[{section}] {key} is not documented"


@pytest.mark.parametrize("batch_size", [0, 17, 2.5])
def test_an_unusable_batch_size_is_refused_clearly(batch_size: float) -> None:
    with pytest.raises(ConfigError, match=r"batch_size must be|\[engine\] batch_size"):
        parse_config({"engine": {"batch_size": batch_size}}, REPO)


@pytest.mark.parametrize("closed_first", [True, False])
def test_a_connection_torn_down_by_the_bots_own_close_is_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          closed_first: bool) -> None:
    """When the engine cannot start, the bot closes itself, possibly while discord.py is still opening the gateway
    connection, and aiohttp then fails inside its connect (seen once in the Redis password test: "assert
    transport is not None"). That is the engine's one clear line; the same failure without a close still raises.
    discord.py's connect is replaced here (the race is too narrow to provoke over a real socket)."""
    import asyncio

    from bot.face import app
    from nst_engine.errors import NSTError

    class HalfOpen(app.NSTBot):
        async def start(self, token: str, *, reconnect: bool = True) -> None:
            if closed_first:
                self.exit_message = "Redis at 127.0.0.1:1/0 refused the connection"
                await self.close()
            raise AssertionError("assert transport is not None")  # what aiohttp raised

    monkeypatch.setattr(app, "new_bot", HalfOpen)
    with pytest.raises(NSTError if closed_first else AssertionError, match="refused the connection|transport"):
        asyncio.run(app._run(config_with(tmp_path), "a-token"))
