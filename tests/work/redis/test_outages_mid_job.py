"""Outages in the middle of a job, with real parts: Redis restarted empty while a worker computes, and a worker
that dies between storing its result and reporting it."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import pytest

from bot.work.protocol import Done, Lost, Started
from bot.work.redis_link import WORKER_PREFIX, result_key
from bot.work.redis_queue import RedisWorkQueue
from tests.intake import hostile_files
from tests.work.redis.helpers import Driver, RedisServer, WorkerProcess, job, queue_config, wait_workers
from tests.work.redis.test_hostile_worker import Impostor, handed_over, next_of

pytestmark = pytest.mark.timeout(300)


@pytest.mark.slow
async def test_redis_restarted_without_its_data_mid_job_runs_the_job_again_once(tmp_path: Path, vgg_weights: Path,
                                                                              caplog) -> None:
    caplog.set_level(logging.INFO, "bot.work.redis_queue")
    server = RedisServer(tmp_path / "redis", "--appendonly", "no").start()  # a restart loses everything
    queue = RedisWorkQueue(queue_config(server.url))
    await queue.start()
    worker = WorkerProcess(tmp_path / "worker", server.url, vgg_weights).start()
    try:
        await wait_workers(queue, 1)
        driver = Driver(queue)
        spec = job(tmp_path, "midjob", iterations=200)
        driver.add(spec)
        await driver.wait_for(lambda event: isinstance(event, Started))
        server.kill()
        await asyncio.sleep(1.0)
        server.start()
        await driver.run_all(timeout=240)
        ends = driver.ends(spec.job_id)
        assert [type(event) for event in ends] == [Lost, Done], ends
        assert "Redis restarted without its data" in ends[0].reason
        assert Path(spec.result).is_file()
        assert "is still running superseded run" in caplog.text  # the first run's worker was told to stop
    finally:
        worker.stop(signal.SIGKILL)
        await queue.close()
        server.kill()


async def test_a_worker_gone_between_storing_its_result_and_reporting_it(tmp_path: Path, redis_server) -> None:
    queue = RedisWorkQueue(queue_config(redis_server.url, lost_after=3))
    await queue.start()
    try:
        impostor = Impostor(redis_server, "uploader")
        spec = job(tmp_path, "halfway", size=64)
        run = await handed_over(queue, impostor, spec)
        await impostor.redis.set(WORKER_PREFIX + "uploader", b"{}", ex=1)  # its last heartbeat
        picture = hostile_files.encoded(hostile_files.noise(64, 43), "PNG")
        await impostor.redis.set(result_key(run), picture[: len(picture) // 2])  # killed mid-upload: no Done
        lost = await next_of(queue, (Done, Lost), timeout=30)
        assert isinstance(lost, Lost) and "stopped responding" in lost.reason
        assert not await impostor.redis.exists(result_key(run)) and not await impostor.redis.exists(WORKER_PREFIX + "uploader")
        assert not Path(spec.result).exists()
    finally:
        await queue.close()
