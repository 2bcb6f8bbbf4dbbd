"""A test-only work queue whose "engine" finishes at once: for measuring the bot's own cost (benchmarks and
tests, ``[queue] backend = "instant"``; never for serving people: it returns the content image unchanged).

It keeps the work-queue contract (one ``Ready``, then exactly one ``Done`` per job handed over) with no engine
process, so what a benchmark measures is the bot alone: intake, the store, the queue, status edits, delivery.
``NST_INSTANT_SLOTS`` (default 1000) jobs run at once, each holding its slot for ``NST_INSTANT_SECONDS``
(default 0), which keeps jobs queued behind them when a benchmark needs many active jobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Sequence

from .protocol import Done, JobSpec, Ready
from .queue import WorkQueue

log = logging.getLogger(__name__)

DEVICE = "instant (test-only)"


class InstantWorkQueue(WorkQueue):
    def __init__(self, slots: int | None = None, seconds: float | None = None) -> None:
        super().__init__()
        self.slots = slots if slots is not None else int(os.environ.get("NST_INSTANT_SLOTS", "1000"))
        self.seconds = seconds if seconds is not None else float(os.environ.get("NST_INSTANT_SECONDS", "0"))
        self.running: dict[str, asyncio.Task] = {}

    async def start(self) -> None:
        log.warning("work queue: the test-only instant engine (results are the content image, unchanged); "
                    "for benchmarks and tests only")
        await self.events.put(Ready(DEVICE, "instant", self.slots))

    def free_slots(self) -> int:
        return max(0, self.slots - len(self.running))

    def workers(self) -> int:
        return 1

    async def submit(self, jobs: Sequence[JobSpec]) -> None:
        for spec in jobs:
            self.running[spec.job_id] = asyncio.create_task(self._run(spec), name=f"instant-{spec.job_id}")

    async def _run(self, spec: JobSpec) -> None:
        cancelled = False
        try:
            await asyncio.sleep(self.seconds)
            await asyncio.to_thread(shutil.copyfile, spec.content, spec.result)
        except asyncio.CancelledError:
            cancelled = True
        self.running.pop(spec.job_id, None)
        await self.events.put(Done(spec.job_id, 0 if cancelled else spec.options.iterations, self.seconds,
                                   cancelled=cancelled, device=DEVICE))

    async def cancel(self, job_id: str) -> None:
        if job_id in self.running:
            self.running[job_id].cancel()

    async def abort(self, job_id: str) -> None:
        await self.cancel(job_id)

    async def close(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
