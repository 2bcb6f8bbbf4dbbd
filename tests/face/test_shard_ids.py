"""``[discord] shard_ids``: which shards one of several bot processes connects; checked when the config is read,
and what it decides in the process (its events stream in Redis, whether it syncs the commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config
from bot.face.app import process_name, syncs_commands
from bot.work.redis_link import events_stream, is_events_stream


def discord(**values: object):
    return parse_config({"discord": values}, Path("."))


def test_a_process_names_some_shards_of_a_counted_total() -> None:
    config = discord(shards=4, shard_ids=[3, 1])
    assert config.discord.shard_ids == (3, 1)
    assert process_name(config) == "shards-1-3" and events_stream(process_name(config)) == "nst:events:shards-1-3"
    assert not syncs_commands(config)
    assert syncs_commands(discord(shards=4, shard_ids=[0, 2]))


def test_without_shard_ids_the_process_is_the_whole_bot() -> None:
    config = discord(shards=2)
    assert config.discord.shard_ids == () and process_name(config) == "" and syncs_commands(config)
    assert events_stream(process_name(config)) == "nst:events"  # what a single bot (and older workers) use


@pytest.mark.parametrize("values", [dict(shards=2, shard_ids=[2]), dict(shards=2, shard_ids=[-1]),
                                    dict(shards=2, shard_ids=[0, 0]), dict(shards="auto", shard_ids=[0]),
                                    dict(shards="off", shard_ids=[0])])
def test_shard_ids_outside_the_count_repeated_or_without_a_count_are_refused(values: dict) -> None:
    with pytest.raises(ConfigError, match=r"\[discord\] shard_ids must name shards of this process once each"):
        discord(**values)


@pytest.mark.parametrize("value", ["0", [True], ["one"]])
def test_shard_ids_must_be_a_list_of_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match=r"\[discord\] shard_ids must be"):
        discord(shards=2, shard_ids=value)


def test_a_worker_writes_events_only_to_streams_a_bot_reads() -> None:
    assert is_events_stream("nst:events") and is_events_stream("nst:events:shards-0")
    assert not is_events_stream("nst:jobs") and not is_events_stream("nst:eventsX")
    assert not is_events_stream("nst:events:" + "x" * 300)
