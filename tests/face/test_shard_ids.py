"""``[discord] shard_ids``: which shards one of several bot processes connects; checked when the config is read,
and what it decides in the process (its events stream in Redis, whether it syncs the commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, DiscordConfig, parse_config
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


# A StatefulSet pod (deploy/kubernetes/bot.yaml) is told its index and the replica count, not its shards.

def pod(monkeypatch: pytest.MonkeyPatch, index: object, processes: object, **values: object):
    monkeypatch.setenv("NST_BOT_PROCESS", str(index))
    monkeypatch.setenv("NST_BOT_PROCESSES", str(processes))
    return discord(**values)


@pytest.mark.parametrize(("processes", "blocks"), [(2, [(0, 1), (2, 3)]), (3, [(0,), (1,), (2, 3)]),
                                                   (4, [(0,), (1,), (2,), (3,)])])
def test_each_pod_takes_its_own_block_of_the_shards_and_the_first_holds_shard_0(
        monkeypatch: pytest.MonkeyPatch, processes: int, blocks: list[tuple[int, ...]]) -> None:
    taken = [pod(monkeypatch, index, processes, shards=4).discord.shard_ids for index in range(processes)]
    assert taken == blocks
    assert syncs_commands(pod(monkeypatch, 0, processes, shards=4))
    assert not syncs_commands(pod(monkeypatch, 1, processes, shards=4))


def test_a_single_pod_is_the_whole_bot_sharded_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pod(monkeypatch, 0, 1).discord == DiscordConfig()
    assert pod(monkeypatch, 0, 1, shards=4).discord.shard_ids == ()


@pytest.mark.parametrize(("index", "processes", "values"), [
    (2, 2, dict(shards=4)), (0, 5, dict(shards=4)), (1, 2, dict(shards="auto")), (1, 2, dict()),
    ("one", 2, dict(shards=4)), (-1, 2, dict(shards=4)), (1, 2, dict(shards=4, shard_ids=[1]))])
def test_a_pod_index_outside_its_count_or_without_counted_shards_is_refused(
        monkeypatch: pytest.MonkeyPatch, index: object, processes: int, values: dict) -> None:
    with pytest.raises(ConfigError, match=r"NST_BOT_PROCESS \(.*\) must be from 0 to NST_BOT_PROCESSES"):
        pod(monkeypatch, index, processes, **values)
