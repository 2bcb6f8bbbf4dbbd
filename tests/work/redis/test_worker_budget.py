"""A Redis worker's memory budget, with real parts (redis-server, an ``nst-bot worker`` process, the backend in
this loop): the worker announces it in its heartbeat, the bot reads the smallest one announced, and a job whose
predicted peak is over it is refused by the worker with what to lower while the jobs that fit run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bot.work.protocol import Done, Failed
from bot.work.redis_queue import RedisWorkQueue
from nst_engine.cost import worst_case_cost
from nst_engine.options import StylizeOptions
from tests.work.redis.helpers import Driver, RedisServer, WorkerProcess, job, wait_workers

pytestmark = pytest.mark.timeout(240)

# Room for the tests' 48 px jobs, not for a 1024 px one.
BUDGET_MB = round(worst_case_cost(StylizeOptions(size=256, iterations=4), 1).peak_mb)


async def test_a_worker_refuses_a_job_over_its_budget_and_runs_the_rest(tmp_path: Path, queue: RedisWorkQueue,
                                                                        redis_server: RedisServer,
                                                                        vgg_weights: Path) -> None:
    worker = WorkerProcess(tmp_path / "worker", redis_server.url, vgg_weights, memory_mb=BUDGET_MB).start()
    try:
        await wait_workers(queue, 1)
        assert queue.memory_budget_mb() == BUDGET_MB  # announced in its heartbeat
        driver = Driver(queue)
        driver.add(job(tmp_path, "huge", size=1024), job(tmp_path, "small"))

        await driver.run_all()

        refused, = driver.ends("huge")
        assert isinstance(refused, Failed)
        assert "more than the image engine may use" in refused.message and "Lower the size (up to" in refused.message
        assert not Path(driver.specs["huge"].result).exists()
        assert [type(event) for event in driver.ends("small")] == [Done]
        assert f"memory budget {BUDGET_MB} MB" in worker.output()
    finally:
        worker.stop(signal.SIGKILL)
