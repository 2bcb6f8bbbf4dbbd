"""The Redis backend's hand-over and tidying (bot/work/redis_queue.py), against a real redis-server with the test
playing the worker: what a submit sends and how it fails, and what the backend keeps of an entry whose jobs end
(see tests/work/redis/test_queue_edges.py for the helpers and the other edges)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.intake.decoder import DecodeRequest, DecoderPool, DecoderUnavailable
from bot.work.protocol import Lost
from bot.work.queue import WorkUnavailable
from bot.work.redis_link import JOBS, input_key, unavailable_message
from bot.work.redis_queue import RedisWorkQueue
from tests.intake import hostile_files
from tests.work.redis.helpers import job, queue_config
from tests.work.redis.test_hostile_worker import Impostor, next_of
from tests.work.redis.test_queue_edges import (QUEUE_LOG, RESTARTED, StopRequests, backend, logged, restart, submit,
                                               until)

pytestmark = pytest.mark.timeout(60)


async def test_a_submit_sends_the_input_keys_and_only_the_results_file_name(tmp_path: Path, queue,
                                                                           redis_server) -> None:
    worker = Impostor(redis_server)
    await worker.beat()
    await queue.submit([job(tmp_path, "named")])
    sent, runs = await worker.take()
    assert sent.jobs[0].result == "named.png"
    assert sent.jobs[0].inputs == (input_key(runs["named"], 0), input_key(runs["named"], 1))


async def test_a_submit_refused_by_redis_or_while_it_is_down(tmp_path: Path, queue, redis_server, caplog) -> None:
    """Redis out of memory (``maxmemory`` 1 byte) refuses the hand-over: unavailable, as when it cannot be reached."""
    caplog.set_level(logging.INFO, QUEUE_LOG)
    refusal = unavailable_message(queue.config)
    assert f"Redis at 127.0.0.1:{redis_server.port}/0 cannot be reached" in refusal
    admin = redis_server.client()
    await admin.config_set("maxmemory", 1)
    with pytest.raises(WorkUnavailable) as refused:
        await queue.submit([job(tmp_path, "too-much")])
    assert str(refused.value) == refusal
    down = [line for line in logged(caplog) if "is unreachable" in line]
    assert len(down) == 1 and "used memory > 'maxmemory'" in down[0], down
    redis_server.kill()
    await until(lambda: queue.refusal() is not None, "the outage seen")
    with pytest.raises(WorkUnavailable) as refused:
        await queue.submit([job(tmp_path, "while-down")])
    assert str(refused.value) == refusal


async def test_an_entry_is_kept_until_its_last_job_ends(tmp_path: Path, servers) -> None:
    """Then a Redis that comes back without its data still loses the entry's remaining job, and nothing is kept
    of entries whose jobs all ended (the backend's own record, ``_entries``: a leak otherwise)."""
    server = servers("redis", "--appendonly", "no").start()
    async with backend(server) as queue:
        worker = Impostor(server)
        await worker.beat()
        pair, _ = await submit(queue, worker, job(tmp_path, "first"), job(tmp_path, "second"))
        await submit(queue, worker, job(tmp_path, "single"))
        await queue.abort("first")
        await queue.abort("single")
        assert queue._entries == {pair: {"second"}}
        assert [(await next_of(queue, (Lost,), 5)).job for _ in range(2)] == ["first", "single"]
        await restart(queue, server)
        assert await next_of(queue, (Lost,), 10) == Lost("second", RESTARTED)


async def test_a_bot_process_of_some_shards_names_itself_and_its_events_in_its_entries(tmp_path: Path,
                                                                                      redis_server) -> None:
    queue = RedisWorkQueue(queue_config(redis_server.url), owner="shards-1")
    await queue.start()
    try:
        await queue.submit([job(tmp_path, "sharded")])
        [(_, fields)] = await redis_server.client().xrange(JOBS)
        assert (fields[b"bot"], fields[b"events"]) == (b"shards-1", b"nst:events:shards-1")
        names = {task.get_name() for task in asyncio.all_tasks()}  # what a task dump or a leak warning shows
        assert {"redis-events", "redis-watch"} <= names
    finally:
        await queue.close()


async def test_close_asks_the_workers_to_stop_unfinished_jobs_and_closes_only_its_own_decoder(
        tmp_path: Path, redis_server) -> None:
    picture = hostile_files.encoded(hostile_files.noise(64, 43), "PNG")
    request = DecodeRequest("result", max_pixels=64 * 64, long_side=64, max_aspect=4)
    given = DecoderPool(workers=1)
    try:
        queue = RedisWorkQueue(queue_config(redis_server.url), decoder=given)
        await queue.start()
        worker = Impostor(redis_server)
        _, runs = await submit(queue, worker, job(tmp_path, "unfinished"))
        async with StopRequests(worker) as stops:
            await queue.close()
            assert await stops.next() == runs["unfinished"]
        assert (await given.decode(picture, request)).size == (64, 43)  # the bot's pool: still open
    finally:
        await given.close()
    queue = RedisWorkQueue(queue_config(redis_server.url))
    assert queue.decoder.workers == 1  # its own pool, for results only: one decoding process
    await queue.start()
    await queue.close()
    with pytest.raises(DecoderUnavailable):
        await queue.decoder.decode(picture, request)


async def test_close_while_redis_is_down_logs_the_jobs_it_could_not_stop(tmp_path: Path, redis_server,
                                                                         caplog) -> None:
    caplog.set_level(logging.INFO, QUEUE_LOG)
    async with backend(redis_server) as queue:
        await queue.submit([job(tmp_path, "left")])
        redis_server.kill()
        await until(lambda: queue.refusal() is not None, "the outage seen")
    assert any(line.startswith("could not ask the workers to stop job left: ") for line in logged(caplog))
