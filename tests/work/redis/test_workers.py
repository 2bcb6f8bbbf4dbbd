"""The Redis work queue with real parts: redis-server, ``nst-bot worker`` processes, the backend in this loop."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from PIL import Image

from bot.work.protocol import Done, Lost, Progress, Ready, Started
from tests.work.redis.helpers import Driver, RedisServer, WorkerProcess, job, wait_workers


@pytest.fixture()
def start_workers(tmp_path: Path, redis_server: RedisServer, vgg_weights: Path):
    started: list[WorkerProcess] = []

    def start(count: int, **options) -> list[WorkerProcess]:
        for _ in range(count):
            index = len(started)
            started.append(WorkerProcess(tmp_path / f"worker-{index}", redis_server.url, vgg_weights, **options).start())
        return started[-count:]

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


def assert_result(spec, size: int = 48) -> None:
    with Image.open(spec.result) as image:
        assert max(image.size) == size


@pytest.mark.slow
async def test_jobs_spread_over_three_workers_each_done_once(tmp_path, queue, start_workers):
    workers = start_workers(3)
    await wait_workers(queue, 3)
    driver = Driver(queue)
    ready = [event for event in [queue.events.get_nowait() for _ in range(queue.events.qsize())]
             if isinstance(event, Ready)]
    assert sorted(event.worker for event in ready) == sorted(worker.name for worker in workers)
    assert all(event.device == "cpu" and event.batch_size == 1 for event in ready)
    specs = [job(tmp_path, f"job{index}", seed=index) for index in range(12)]
    driver.add(*specs)

    await driver.run_all()

    for spec in specs:
        assert [type(event) for event in driver.ends(spec.job_id)] == [Done]
        assert_result(spec)
    did = {worker for spec in specs for worker in driver.workers_of(spec.job_id)}
    assert did == {worker.name for worker in workers}, "every worker ran some jobs"
    for worker in workers:
        assert "device cpu, batch size 1" in worker.output()


async def test_a_worker_batches_compatible_jobs(tmp_path, queue, start_workers):
    start_workers(1, batch_size=2)
    await wait_workers(queue, 1)
    assert queue.free_slots() == 2
    driver = Driver(queue)
    driver.add(job(tmp_path, "a", seed=1), job(tmp_path, "b", seed=2))

    await driver.run_all()

    done = [event for event in driver.events if isinstance(event, Done)]
    assert sorted(event.job for event in done) == ["a", "b"]
    assert [event.batch_size for event in done] == [2, 2]
    assert all(event.output == str(tmp_path / f"{event.job}.png") for event in done), "the bot-side result path"
    assert_result(driver.specs["a"])


async def test_cancel_and_abort_reach_the_worker_running_the_job(tmp_path, queue, start_workers):
    start_workers(1)
    await wait_workers(queue, 1)
    driver = Driver(queue)
    long_job = job(tmp_path, "long", iterations=2000)
    driver.add(long_job)
    await driver.wait_for(lambda event: isinstance(event, Progress) and event.job == "long")
    await queue.cancel("long")
    done = await driver.wait_for(lambda event: isinstance(event, Done) and event.job == "long", timeout=30)
    assert done.cancelled and done.iterations < 2000
    assert not Path(long_job.result).exists()

    driver.add(job(tmp_path, "stuck", iterations=2000))
    driver.retried.add("stuck")  # the core fails a job past its time limit instead of running it again
    await driver.wait_for(lambda event: isinstance(event, Progress) and event.job == "stuck")
    await queue.abort("stuck")
    lost = await driver.wait_for(lambda event: isinstance(event, Lost) and event.job == "stuck", timeout=5)
    assert "time limit" in lost.reason
    driver.add(job(tmp_path, "next"))
    done = await driver.wait_for(lambda event: isinstance(event, Done) and event.job == "next", timeout=60)
    assert not done.cancelled, "the aborted job's worker stopped it and took the next one"


async def test_sigterm_hands_the_running_job_back(tmp_path, queue, start_workers):
    worker, = start_workers(1)
    await wait_workers(queue, 1)
    driver = Driver(queue)
    driver.retried.add("handed-back")  # no second attempt: the worker is gone
    driver.add(job(tmp_path, "handed-back", iterations=2000))
    await driver.wait_for(lambda event: isinstance(event, Progress))
    worker.process.send_signal(signal.SIGTERM)

    lost = await driver.wait_for(lambda event: isinstance(event, Lost), timeout=30)
    assert "stopped before it finished" in lost.reason
    assert worker.process.wait(30) == 0
    assert not await queue.redis.exists(f"nst:worker:{worker.name}"), "it took its heartbeat away"


@pytest.mark.slow
async def test_sigkilled_worker_job_is_lost_then_finished_by_another(tmp_path, queue, start_workers):
    workers = {worker.name: worker for worker in start_workers(2)}
    await wait_workers(queue, 2)
    driver = Driver(queue)
    spec = job(tmp_path, "victim", iterations=150)
    driver.add(spec)
    started = await driver.wait_for(lambda event: isinstance(event, Started))
    await driver.wait_for(lambda event: isinstance(event, Progress))
    os.kill(workers[started.worker].process.pid, signal.SIGKILL)

    lost = await driver.wait_for(lambda event: isinstance(event, Lost), timeout=60)
    assert started.worker in lost.reason
    await driver.run_all()

    assert [type(event) for event in driver.ends("victim")] == [Lost, Done]
    assert driver.workers_of("victim")[-1] != started.worker
    assert_result(spec)
