"""Redis going away: nothing accepted is lost across a SIGKILL (AOF on), and the backend says it is unavailable,
then recovers by itself; Redis not there yet at start is the same, and a refused password is fatal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bot.work.protocol import Done, Started
from bot.work.queue import WorkUnavailable
from bot.work.redis_queue import RedisWorkQueue
from tests.work.redis.helpers import Driver, RedisServer, WorkerProcess, job, queue_config, wait_workers


async def wait_until(condition, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_start_without_redis_serves_refusals_then_connects(tmp_path: Path, vgg_weights: Path):
    server = RedisServer(tmp_path / "redis").start()
    async with server.client() as client:  # left by an earlier bot; kept on disk (AOF) while Redis is down
        await client.xadd("nst:jobs", {"jobs": "an earlier bot's entry"})
    server.kill()
    queue = RedisWorkQueue(queue_config(server.url))
    await queue.start()
    worker = None
    try:
        assert "temporarily unavailable" in queue.refusal()
        assert queue.free_slots() == 0 and queue.workers() == 0
        with pytest.raises(WorkUnavailable, match="temporarily unavailable"):
            await queue.submit([job(tmp_path, "too-early")])

        server.start()  # same port and folder
        worker = WorkerProcess(tmp_path / "worker", server.url, vgg_weights).start()
        await wait_until(lambda: queue.refusal() is None)
        assert await queue.redis.xlen("nst:jobs") == 0, "the first connection cleared an earlier bot's jobs"
        await wait_workers(queue, 1)
        driver = Driver(queue)
        driver.add(job(tmp_path, "later"))
        await driver.run_all()
        assert [type(event) for event in driver.ends("later")] == [Done]
    finally:
        if worker is not None:
            worker.stop(signal.SIGKILL)
        await queue.close()
        server.kill()


async def test_redis_down_then_back(tmp_path: Path, redis_server: RedisServer, vgg_weights: Path):
    queue = RedisWorkQueue(queue_config(redis_server.url))
    await queue.start()
    assert queue.refusal() is None
    worker = WorkerProcess(tmp_path / "worker", redis_server.url, vgg_weights).start()
    try:
        await wait_workers(queue, 1)
        redis_server.kill()
        await wait_until(lambda: queue.refusal() is not None)
        assert "temporarily unavailable" in queue.refusal()
        assert queue.free_slots() == 0 and queue.workers() == 0
        with pytest.raises(WorkUnavailable, match="temporarily unavailable"):
            await queue.submit([job(tmp_path, "during")])

        redis_server.start()
        await wait_until(lambda: queue.refusal() is None)
        await wait_workers(queue, 1)
        driver = Driver(queue)
        driver.add(job(tmp_path, "after"))
        await driver.run_all()
        assert [type(event) for event in driver.ends("after")] == [Done]
        assert "unreachable" in worker.output() and "reachable again" in worker.output()
    finally:
        worker.stop(signal.SIGKILL)
        await queue.close()


@pytest.mark.slow
async def test_redis_sigkilled_and_restarted_loses_no_job(tmp_path: Path, redis_server: RedisServer,
                                                         vgg_weights: Path):
    queue = RedisWorkQueue(queue_config(redis_server.url))
    await queue.start()
    workers = [WorkerProcess(tmp_path / f"worker-{index}", redis_server.url, vgg_weights).start() for index in range(2)]
    try:
        await wait_workers(queue, 2)
        driver = Driver(queue)
        specs = [job(tmp_path, f"job{index}", iterations=60, seed=index) for index in range(4)]
        driver.add(*specs)
        await driver.wait_for(lambda event: isinstance(event, Started))
        redis_server.kill()
        await asyncio.sleep(1.5)
        redis_server.start()

        await driver.run_all(timeout=240)

        for spec in specs:
            assert [type(event) for event in driver.ends(spec.job_id)] == [Done], driver.ends(spec.job_id)
            assert Path(spec.result).is_file()
    finally:
        for worker in workers:
            worker.stop(signal.SIGKILL)
        await queue.close()


async def test_password_comes_from_a_secret_file_and_stays_out_of_logs(tmp_path: Path, vgg_weights: Path,
                                                                      monkeypatch: pytest.MonkeyPatch, caplog):
    password = "correct-horse-battery-staple"
    server = RedisServer(tmp_path / "redis", "--requirepass", password).start()
    secret = tmp_path / "redis-password"
    secret.write_text(password + "\n")
    try:
        monkeypatch.delenv("NST_REDIS_PASSWORD", raising=False)
        with pytest.raises(WorkUnavailable, match="refused the connection.*NST_REDIS_PASSWORD"):
            await RedisWorkQueue(queue_config(server.url)).start()

        monkeypatch.setenv("NST_REDIS_PASSWORD_FILE", str(secret))
        queue = RedisWorkQueue(queue_config(server.url))
        await queue.start()
        worker = WorkerProcess(tmp_path / "worker", server.url, vgg_weights,
                               env={"NST_REDIS_PASSWORD_FILE": str(secret)}).start()
        try:
            driver = Driver(queue)
            driver.add(job(tmp_path, "secret"))
            await wait_workers(queue, 1)
            await driver.run_all()
            assert [type(event) for event in driver.ends("secret")] == [Done]
        finally:
            worker.stop()
            await queue.close()
        assert password not in worker.output() and password not in caplog.text
    finally:
        server.kill()
