"""What the Redis work queue costs and gains, measured in one run on this machine.

    python benchmarks/redis_backend.py                 # 6 jobs per measurement, 64 px, 20 iterations
    python benchmarks/redis_backend.py --jobs 4 --iterations 10

1. Added latency per job: the same small job run in this process with bot/work/runner.py (the engine side every
   backend shares) against submit → ``Done`` through a real redis-server and one ``nst-bot worker``, one job at a
   time; and the queue's own overhead (image transfer, events, result fetch): submit → ``Done`` minus the
   engine time the worker reports, which is immune to the engine running slower or faster in another process.
2. Throughput: jobs per minute through Redis with one worker and with two, each worker on one torch thread
   (on a 2-core machine, close to 2x is the ideal).

Uses a seeded random VGG19 (the real one cannot be downloaded here); the speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bot.work.protocol import Done  # noqa: E402
from bot.work.redis_queue import RedisWorkQueue  # noqa: E402
from bot.work.runner import run_batch  # noqa: E402
from nst_engine.testing import write_random_vgg19  # noqa: E402
from nst_engine.transfer import Engine  # noqa: E402
from tests.work.redis.helpers import Driver, RedisServer, WorkerProcess, job, queue_config, wait_workers  # noqa: E402


def in_process_seconds(folder: Path, weights: Path, jobs: int, size: int, iterations: int) -> list[float]:
    torch.set_num_threads(1)
    engine = Engine(str(weights))
    run_batch(engine, [job(folder, "warm-up", size=size, iterations=2)], lambda event: None, lambda _: False)
    times = []
    for index in range(jobs):
        started = time.perf_counter()
        run_batch(engine, [job(folder, f"local{index}", size=size, iterations=iterations, seed=index)],
                  lambda event: None, lambda _: False)
        times.append(time.perf_counter() - started)
    return times


async def through_redis(folder: Path, weights: Path, workers: int, jobs: int, size: int, iterations: int,
                        one_at_a_time: bool) -> list[tuple[float, float]]:
    """Per job (submit → Done seconds, the worker's engine seconds) when ``one_at_a_time``, else the wall time of
    all jobs as one pair."""
    server = RedisServer(folder / "redis").start()
    queue = RedisWorkQueue(queue_config(server.url, lost_after=30))
    await queue.start()
    processes = [WorkerProcess(folder / f"worker{index}", server.url, weights).start() for index in range(workers)]
    try:
        await wait_workers(queue, workers, timeout=300)
        warm = Driver(queue)  # every worker runs one tiny job first, as the in-process engine did
        warm.add(*[job(folder, f"warm{index}", size=size, iterations=2) for index in range(workers)])
        await warm.run_all(timeout=600)
        specs = [job(folder, f"redis{index}", size=size, iterations=iterations, seed=index) for index in range(jobs)]
        driver = Driver(queue)
        if one_at_a_time:
            times = []
            for spec in specs:
                started = time.perf_counter()
                driver.add(spec)
                done = await driver.wait_for(lambda event: isinstance(event, Done) and event.job == spec.job_id, 600)
                times.append((time.perf_counter() - started, done.elapsed))
            return times
        started = time.perf_counter()
        driver.add(*specs)
        await driver.run_all(timeout=1800)
        wall = time.perf_counter() - started
        return [(wall, wall)]
    finally:
        for process in processes:
            process.stop(signal.SIGTERM)
        await queue.close()
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nst-redis-bench-") as temp:
        folder = Path(temp)
        weights = write_random_vgg19(folder / "vgg19-random.pth")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__}; {args.jobs} jobs of {args.size} px, {args.iterations} iterations")
        local = statistics.median(in_process_seconds(folder / "local", weights, args.jobs, args.size, args.iterations))
        timings = asyncio.run(through_redis(folder / "latency", weights, 1, args.jobs, args.size, args.iterations,
                                            one_at_a_time=True))
        remote = statistics.median(total for total, _ in timings)
        overhead = statistics.median(total - engine for total, engine in timings)
        print(f"per job, median: in-process {local:.3f} s, through Redis {remote:.3f} s ({remote / local:.2f}x); "
              f"queue overhead (submit → Done minus the worker's engine time) {overhead:.3f} s "
              f"({overhead / local:.1%} of the in-process job)")
        per_minute = {}
        for workers in (1, 2):
            wall = asyncio.run(through_redis(folder / f"throughput{workers}", weights, workers, args.jobs, args.size,
                                             args.iterations, one_at_a_time=False))[0][0]
            per_minute[workers] = args.jobs / wall * 60
            print(f"{workers} worker(s): {per_minute[workers]:.1f} jobs/min")
        print(f"2 workers / 1 worker: {per_minute[2] / per_minute[1]:.2f}x")


if __name__ == "__main__":
    main()
