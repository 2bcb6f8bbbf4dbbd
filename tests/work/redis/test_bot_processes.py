"""Several bot processes, one worker pool: each process holds some of the Discord shards (``[discord] shard_ids``)
and owns its servers' jobs; all hand them to the same ``nst-bot worker``s through one real ``redis-server``, and
each job's events and result come back to the process that owns it, on its own events stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_client

from bot.work.redis_queue import RedisWorkQueue
from tests.face.discord_standin import ALICE, BOB, CAROL, GUILD_ID, OTHER_GUILD_ID, StandinThread, shard_of
from tests.face.harness import BotProcess, custom_id, deliveries, images, result_message, write_config
from tests.work.redis.helpers import (REDIS_SERVER, Driver, RedisServer, WorkerProcess, job, queue_config,
                                      queue_section, wait_workers)

pytestmark = [pytest.mark.timeout(400),
              pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (.ci/run installs it)")]


async def test_a_bot_process_starting_leaves_the_other_processes_jobs_in_the_pool(redis_server: RedisServer,
                                                                                  tmp_path: Path) -> None:
    first = RedisWorkQueue(queue_config(redis_server.url), owner="shards-0")
    await first.start()
    second = None
    try:
        await first.submit([job(tmp_path, "of-shard-0")])  # no worker yet: it waits in the stream
        second = RedisWorkQueue(queue_config(redis_server.url), owner="shards-1")
        await second.start()
        entries = await second.redis.xrange("nst:jobs")
        assert [(fields[b"bot"], fields[b"events"]) for _, fields in entries] == [(b"shards-0", b"nst:events:shards-0")]
        await second.close()
        second = RedisWorkQueue(queue_config(redis_server.url), owner="shards-0")  # shard 0's process restarted
        await second.start()
        assert await second.redis.xlen("nst:jobs") == 0  # its own earlier entry is gone: its store resubmits it
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_each_bot_process_gets_only_its_own_jobs_events(redis_server: RedisServer, tmp_path: Path,
                                                              vgg_weights: Path) -> None:
    worker = WorkerProcess(tmp_path / "worker", redis_server.url, vgg_weights).start()
    queues = [RedisWorkQueue(queue_config(redis_server.url), owner=f"shards-{shard}") for shard in (0, 1)]
    try:
        for queue in queues:
            await queue.start()
            await wait_workers(queue, 1)
        drivers = [Driver(queue) for queue in queues]
        drivers[0].add(job(tmp_path / "a", "a1"), job(tmp_path / "a", "a2"))
        drivers[1].add(job(tmp_path / "b", "b1"))
        for driver in drivers:
            await driver.run_all()
        assert sorted(drivers[0].endings) == ["a1", "a2"] and sorted(drivers[1].endings) == ["b1"]
        seen = [{getattr(event, "job", None) for event in driver.events} - {None} for driver in drivers]
        assert seen == [{"a1", "a2"}, {"b1"}]  # no process saw the other's progress or results
    finally:
        for queue in queues:
            await queue.close()
        worker.stop()


@pytest.mark.slow
def test_two_bot_processes_on_two_shards_share_one_pool_and_each_posts_its_own_results(
        tmp_path: Path, vgg_weights: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    worker = WorkerProcess(tmp_path / "worker", redis.url, vgg_weights).start()
    bots: list[BotProcess] = []
    try:
        with StandinThread() as standin:
            for shard in (0, 1):
                folder = tmp_path / f"bot-{shard}"
                folder.mkdir()
                config = write_config(folder, standin, folder / "no-weights.pth", extra=queue_section(redis.url),
                                      discord=f"shards = 2\nshard_ids = [{shard}]")
                bots.append(BotProcess(config, folder / "bot.log").start())
            for bot in bots:
                bot.wait_ready()
            assert sorted(record.payload["shard"] for record in standin.records("identify")) == [[0, 2], [1, 2]]
            owners = {shard_of(OTHER_GUILD_ID, 2): OTHER_GUILD_ID, shard_of(GUILD_ID, 2): GUILD_ID}
            asked = {}
            for shard, who in ((0, BOB), (1, ALICE)):
                content, style = images(standin)
                asked[shard] = standin.command("stylize", {"content": content, "style": style, "quality": "fast"},
                                               who, guild_id=owners[shard])
            content, style = images(standin)
            direct = standin.command("stylize", {"content": content, "style": style, "quality": "fast"}, CAROL,
                                     dm=True)
            jobs = {token: custom_id(result_message(standin, token, timeout=180), "nst:again:").split(":")[2]
                    for token in (*asked.values(), direct)}
            time.sleep(2)  # room for a wrong second post
            for job_id in jobs.values():
                assert len(deliveries(standin, job_id)) == 1
            logs = [bot.output() for bot in bots]
            for shard, token in ((0, asked[0]), (0, direct), (1, asked[1])):  # direct messages come on shard 0
                assert f"job {jobs[token]} done" in logs[shard] and jobs[token] not in logs[1 - shard]
            assert "synced" in logs[0] and "synced" not in logs[1]  # the application's commands, synced once
            client = redis_client.Redis.from_url(redis.url)
            assert client.exists("nst:events:shards-0") and client.exists("nst:events:shards-1")
            assert not client.exists("nst:events")
            client.close()
            for bot in bots:
                assert bot.stop() == 0
    finally:
        for bot in bots:
            bot.stop()
        worker.stop()
        redis.kill()
