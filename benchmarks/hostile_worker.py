"""What a process posing as a Redis worker costs the bot, before (the ``--before`` checkout's backend) and after
(this tree's): it takes a 64-px job and answers with a 168-megapixel PNG of about 0.5 MB as the result, and
with a 40 MB preview. Each side runs in a fresh process against a real ``redis-server``: the backend receives
the events, and for a result it accepted, the bot's delivery step (opening the result to post it) runs too.
Printed: the CPU seconds and peak resident memory growth of that process, and what came of the job.

Nothing is asserted; figures are printed and written to benchmarks/out/hostile_worker.json.

    python benchmarks/hostile_worker.py [--before /path/to/main/checkout] [--preview-mb 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


async def one_side(redis_url: str, work: Path, preview_mb: int) -> dict:
    """Runs inside a fresh process whose ``bot`` package is the side under test."""
    import redis.asyncio
    from PIL import Image

    from bot.config import QueueConfig
    from bot.work.protocol import Done, Failed, Progress, to_json
    from bot.work.redis_link import EVENTS, GROUP, JOBS, WORKER_PREFIX, result_key
    from bot.work.redis_queue import RedisWorkQueue
    from tests.work.redis.helpers import job

    hostile_files = _this_trees_hostile_files()  # the same bytes on both sides

    queue = RedisWorkQueue(QueueConfig(backend="redis", redis_url=redis_url, lost_after=3))
    await queue.start()
    impostor = redis.asyncio.Redis.from_url(redis_url)
    await impostor.set(WORKER_PREFIX + "impostor", json.dumps({"device": "cpu", "batch_size": 1}), ex=60)
    while not queue.free_slots():
        await asyncio.sleep(0.1)
    spec = job(work, "bomb", size=64)
    bomb, preview = hostile_files.flat_grey_png(12000, 14000), b"\x89PNG" + b"\x00" * (preview_mb << 20)
    cpu0, peak0 = _usage()
    await queue.submit([spec])
    reply = []
    while not reply:
        reply = await impostor.xreadgroup(GROUP, "impostor", {JOBS: ">"}, count=1, block=100)
    run = json.loads(reply[0][1][0][1][b"runs"])[spec.job_id]
    if preview_mb:
        await impostor.xadd(EVENTS, {"run": run, "event": to_json(Progress(spec.job_id, 1, 4, None, None, preview))})
    await impostor.set(result_key(run), bomb)
    await impostor.xadd(EVENTS, {"run": run, "event": to_json(Done(spec.job_id, 4, 1.0, width=12000, height=14000))})
    seen, ending = [], None
    while ending is None:
        event = await asyncio.wait_for(queue.events.get(), 120)
        seen.append(type(event).__name__ + (f"(preview {len(event.preview)} bytes)" if getattr(event, "preview", None)
                                            else ""))
        ending = event if isinstance(event, (Done, Failed)) else None
    posted = None
    if isinstance(ending, Done):  # what the bot's delivery does with an accepted result
        posted = Image.open(spec.result).convert("RGB").size
    cpu1, peak1 = _usage()
    await queue.close()
    return {"bot_cpu_s": round(cpu1 - cpu0, 3), "bot_peak_growth_mb": round(peak1 - peak0), "events": seen,
            "posted_size": posted, "ending": ending.message if isinstance(ending, Failed) else "Done",
            "result_bytes": len(bomb)}


def _this_trees_hostile_files():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hostile_files", REPO / "tests" / "intake" / "hostile_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _usage() -> tuple[float, float]:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime, used.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/work/main"), help="checkout of the old code")
    parser.add_argument("--preview-mb", type=int, default=40, help="size of the hostile preview (0: none)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(asyncio.run(one_side(args.redis, Path(work), args.preview_mb))))
        return
    sys.path.insert(0, str(REPO))
    from tests.work.redis.helpers import RedisServer

    report = {}
    with tempfile.TemporaryDirectory() as temporary:
        for label, checkout in (("before", args.before.resolve()), ("after", REPO)):
            server = RedisServer(Path(temporary) / label).start()
            try:  # the side's own bot package first; this tree's tests for the shared helpers
                env = {**os.environ, "PYTHONPATH": f"{checkout}{os.pathsep}{REPO}"}
                started = time.monotonic()
                done = subprocess.run([sys.executable, __file__, "--side", label, "--redis", server.url,
                                       "--preview-mb", str(args.preview_mb)], cwd=checkout,
                                      env=env, capture_output=True, text=True, timeout=600)
                report[label] = json.loads(done.stdout.strip().splitlines()[-1])
                report[label]["wall_s"] = round(time.monotonic() - started, 1)
            finally:
                server.kill()
            print(f"{label:6}: {report[label]}", flush=True)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / f"hostile_worker-preview{args.preview_mb}mb.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
