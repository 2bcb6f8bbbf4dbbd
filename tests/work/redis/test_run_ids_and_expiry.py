"""Two promises of docs/scaling.md against the real backend and a real redis-server, with a process posing as a
worker: a superseded attempt's late events are ignored by their run id, and what Redis let expire after
``[queue] transfer_ttl`` becomes a lost job (which the core hands over again), never a broken result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.work.protocol import Done, Lost, Progress
from bot.work.redis_link import input_key, result_key
from bot.work.redis_queue import RedisWorkQueue
from tests.intake import hostile_files
from tests.work.redis.helpers import RedisServer, job, queue_config
from tests.work.redis.test_hostile_worker import Impostor, handed_over, next_of

pytestmark = pytest.mark.timeout(120)


async def test_a_superseded_attempts_late_result_is_ignored_by_its_run_id(tmp_path: Path, queue, redis_server) -> None:
    impostor = Impostor(redis_server)
    spec = job(tmp_path, "twice", size=64)
    first = await handed_over(queue, impostor, spec)
    await queue.abort(spec.job_id)  # the core gave up on the first attempt; it hands the job over again
    assert isinstance(await next_of(queue, (Lost,)), Lost)
    second = await handed_over(queue, impostor, spec)
    assert second != first
    picture = hostile_files.encoded(hostile_files.noise(64, 43), "PNG")
    await impostor.redis.set(result_key(first), picture)
    await impostor.send(first, Done(spec.job_id, 4, 1.0, width=64, height=43, output="x"))  # late: ignored
    await impostor.send(second, Progress(spec.job_id, 1, 4, None))
    assert (await next_of(queue, (Progress, Done, Lost))).iteration == 1  # the late Done was not taken
    assert not Path(spec.result).exists()
    await impostor.redis.set(result_key(second), picture)
    await impostor.send(second, Done(spec.job_id, 4, 1.0, width=64, height=43, output="x"))
    assert isinstance(await next_of(queue, (Done, Lost)), Done) and Path(spec.result).exists()


async def test_images_in_redis_expire_after_transfer_ttl_and_an_expired_result_is_a_lost_job(
        tmp_path: Path, redis_server: RedisServer) -> None:
    queue = RedisWorkQueue(dataclasses.replace(queue_config(redis_server.url), transfer_ttl=120))
    await queue.start()
    try:
        impostor = Impostor(redis_server)
        spec = job(tmp_path, "expired", size=64)
        run = await handed_over(queue, impostor, spec)
        for index in range(len(spec.inputs)):
            assert 110 <= await impostor.redis.ttl(input_key(run, index)) <= 120
        # The worker stored its result, which then expired before the bot fetched it (no key left).
        await impostor.send(run, Done(spec.job_id, 4, 1.0, width=64, height=43, output="x"))
        ending = await next_of(queue, (Done, Lost))
        assert isinstance(ending, Lost) and "expired in Redis" in ending.reason
        assert not Path(spec.result).exists()
    finally:
        await queue.close()
