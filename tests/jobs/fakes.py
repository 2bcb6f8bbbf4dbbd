"""Stand-ins for the job core's two neighbours, so the core runs on its own in unit tests.

:class:`FakeWorkQueue` replaces the engine (a real one needs torch and a subprocess): it records what it is
handed and the test plays the engine's part by putting protocol events on its queue. :class:`FakeFrontend`
replaces the Discord face and records what the core asked it to show. Everything else is real: the store is
SQLite in a temporary folder with real image files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from bot.config import LimitsConfig
from bot.jobs.core import JobCore
from bot.jobs.disk import DiskBudget
from bot.jobs.frontend import DeliveryFailed
from bot.jobs.model import ActiveJob, Job, new_job_id
from bot.jobs.store import JobStore
from bot.work.protocol import Event, JobSpec
from bot.work.queue import WorkQueue, WorkUnavailable
from nst_engine.options import StylizeOptions


class FakeWorkQueue(WorkQueue):
    def __init__(self, slots: int = 1, unavailable: str | None = None) -> None:
        super().__init__()
        self.slots, self.unavailable = slots, unavailable
        self.submitted: list[list[str]] = []
        self.running: set[str] = set()
        self.cancelled: list[str] = []
        self.aborted: list[str] = []
        self.closed = False
        self.announced_mb: float | None = None  # the engines' memory budget, as Redis workers announce theirs

    async def start(self) -> None:
        if self.unavailable:
            raise WorkUnavailable(self.unavailable)

    def free_slots(self) -> int:
        return self.slots if not self.running else 0

    async def submit(self, jobs: Sequence[JobSpec]) -> None:
        assert all(isinstance(spec.options, StylizeOptions) for spec in jobs)  # options keep their type
        self.submitted.append([spec.job_id for spec in jobs])
        self.running.update(spec.job_id for spec in jobs)

    async def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    async def abort(self, job_id: str) -> None:
        self.aborted.append(job_id)

    def workers(self) -> int:
        return 1

    def memory_budget_mb(self) -> float | None:
        return self.announced_mb

    async def close(self) -> None:
        self.closed = True

    def emit(self, event: Event) -> None:
        """Play the engine: report ``event`` (a job's last event frees its slot, as a real backend does)."""
        if type(event).__name__ in ("Done", "Failed", "Lost"):
            self.running.discard(event.job)
        self.events.put_nowait(event)


class FakeFrontend:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.delivered: list[tuple[str, float | None]] = []
        self.ended: list[tuple[str, str, str]] = []  # job, state, message
        self.refuse_delivery = False

    async def show(self, active: ActiveJob) -> None:
        self.shown.append(active.id)

    async def deliver(self, job: Job, elapsed: float | None, result: str) -> int:
        assert Path(result).is_file()
        if self.refuse_delivery:
            raise DeliveryFailed("could not post")
        self.delivered.append((job.id, elapsed))
        return 1000 + len(self.delivered)

    async def concluded(self, active: ActiveJob) -> None:
        self.ended.append((active.id, active.job.state, active.job.error))


def request(user_id: int = 1, size: int = 32, iterations: int = 10) -> Job:
    """A new job as a front end makes it from a checked request."""
    return Job(new_job_id(), user_id, f"user{user_id}", 5, 6, "a style", "fast",
                   StylizeOptions(size=size, iterations=iterations, device="cpu"))


def picture(width: int = 30, height: int = 20) -> Image.Image:
    return Image.new("RGB", (width, height), "teal")


async def accepted(core: JobCore, user_id: int = 1, **options: int) -> ActiveJob:
    """A request accepted and queued, as the face does it."""
    with core.admit(user_id):
        active = await core.accept(request(user_id, **options), picture(), picture(8, 8))
        core.enqueue(active)
    return active


def make_core(tmp_path: Path, work: FakeWorkQueue | None = None, *, batch_size: int = 1,
              job_timeout: float = 60.0, disk_bytes: int = 0, memory_budget_mb: float | None = None,
              **limits: float) -> JobCore:
    """A core on a real store under ``tmp_path``; ``disk_bytes`` caps the data dir (0: free space only);
    ``memory_budget_mb`` bounds jobs by their predicted peak (None: not at all)."""
    settings = {"max_queue": 10, "max_jobs_per_user": 3, "cooldown_seconds": 0.0, **limits}
    store = JobStore(tmp_path / "data")
    return JobCore(store, work or FakeWorkQueue(), LimitsConfig(**settings), batch_size=batch_size,
                   job_timeout=job_timeout, disk=DiskBudget(store, disk_bytes), memory_budget_mb=memory_budget_mb)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the dispatcher's tasks run until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the core never got there"
        await asyncio.sleep(0.001)
