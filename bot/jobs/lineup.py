"""The active jobs in order: who waits where, what runs, and when each is expected to start and finish."""

from __future__ import annotations

from typing import Callable, Iterable

from nst_engine.cost import JobCost, animation_cost, job_cost

from .estimates import SpeedModel
from .model import RUNNING, ActiveJob

Size = tuple[int, int]


class Lineup:
    """Queued jobs in order and the jobs handed to the engines; estimates from a :class:`SpeedModel`.

    Running jobs of one batch run side by side, so the engine is free when the slowest of them ends; the
    jobs ahead of a queued one are counted one after another (batching can only make it sooner). Positions and
    start times are worked out for the whole queue at once, again only after it changed: status messages ask
    for every job's every few seconds, which job by job would cost the square of the queue's length.
    """

    def __init__(self, speed: SpeedModel, content_size: Callable[[str], Size],
                 style_sizes: Callable[[str], list[Size]] = lambda job_id: []) -> None:
        self.speed = speed
        self.read_content_size = content_size  # of a job's kept content image (reads a file header)
        self.read_style_sizes = style_sizes  # of its kept style images (headers too)
        self.content_sizes: dict[str, Size] = {}
        self.costs: dict[str, JobCost] = {}
        self.device = "cpu"  # what the cost model assumes the engines are: "cpu" or "cuda"
        self.jobs: dict[str, ActiveJob] = {}
        self.waiting: list[str] = []
        self.running: list[str] = []
        self._changes = 0  # counts changes of ``waiting`` and ``running``, which the cached views depend on
        self._positions: tuple[int, dict[str, int]] = (-1, {})
        self._starts: tuple[tuple, dict[str, float | None]] = ((), {})

    # ----------------------------------------------------------------------------------------- changes

    def add(self, active: ActiveJob) -> None:
        """Known to the lineup (counted against limits) but not yet waiting for the engine."""
        self.jobs[active.id] = active

    def enqueue(self, job_id: str) -> int:
        self.waiting.append(job_id)
        self._changes += 1
        return len(self.waiting)

    def requeue(self, job_id: str) -> None:
        """A job to run again goes first, after other jobs already waiting to run again."""
        self.running = [other for other in self.running if other != job_id]
        self._changes += 1
        front = 0
        while front < len(self.waiting) and self.jobs[self.waiting[front]].job.attempts > 0:
            front += 1
        self.waiting.insert(front, job_id)
        self._changes += 1

    def take(self, job_ids: Iterable[str]) -> list[ActiveJob]:
        """Move waiting jobs to running."""
        taken = [self.jobs[job_id] for job_id in job_ids]
        for active in taken:
            self.waiting.remove(active.id)
            self.running.append(active.id)
        self._changes += 1
        return taken

    def left_engine(self, job_id: str) -> None:
        self.running = [other for other in self.running if other != job_id]
        self._changes += 1

    def remove(self, job_id: str) -> ActiveJob | None:
        self.left_engine(job_id)
        self.content_sizes.pop(job_id, None)
        self.costs.pop(job_id, None)
        if job_id in self.waiting:
            self.waiting.remove(job_id)
        return self.jobs.pop(job_id, None)

    # ------------------------------------------------------------------------------------------ views

    def ordered(self) -> list[ActiveJob]:
        """Running jobs, then queued ones in order (what /queue shows)."""
        return [self.jobs[job_id] for job_id in self.running + self.waiting if job_id in self.jobs]

    def of_user(self, user_id: int) -> list[ActiveJob]:
        return [active for active in self.jobs.values() if active.job.user_id == user_id]

    def position(self, job_id: str) -> int:
        """1 for the next job to start; 0 when not waiting."""
        if self._positions[0] != self._changes:
            self._positions = (self._changes, {waiting: index + 1 for index, waiting in enumerate(self.waiting)})
        return self._positions[1].get(job_id, 0)

    def content_size(self, job_id: str) -> tuple[int, int]:
        """The job's content (width, height), read once (status messages ask for estimates every few seconds)."""
        if job_id not in self.content_sizes:
            try:
                self.content_sizes[job_id] = self.read_content_size(job_id)
            except OSError:  # the input is gone or unreadable (the engine will say so): a square is the bound
                side = self.jobs[job_id].job.options.size
                self.content_sizes[job_id] = (side, side)
        return self.content_sizes[job_id]

    def cost(self, job_id: str) -> JobCost:
        """The job's predicted peak memory and work (nst_engine.cost; an animation's over all its frames), from its
        kept inputs' sizes, once."""
        if job_id not in self.costs:
            try:
                styles = self.read_style_sizes(job_id)
            except OSError:  # as for the content: the engine will say what is wrong
                styles = []
            job = self.jobs[job_id].job
            self.costs[job_id] = (animation_cost(job.options, self.content_size(job_id), job.frames, styles,
                                                 device=self.device) if job.animated else
                                  job_cost(job.options, self.content_size(job_id), styles, device=self.device))
        return self.costs[job_id]

    def estimate(self, active: ActiveJob) -> float | None:
        """Seconds a job takes from start to end, from the learned speed."""
        return self.speed.estimate(self.cost(active.id).work)

    def remaining(self, job_id: str) -> float | None:
        active = self.jobs.get(job_id)
        if active is None:
            return 0.0
        if active.job.state == RUNNING and active.eta is not None:
            return active.eta
        return self.estimate(active)

    def engine_free_in(self) -> float | None:
        """Seconds until the running batch has finished."""
        times = [self.remaining(job_id) for job_id in self.running]
        return None if any(t is None for t in times) else max(times, default=0.0)

    def eta_until_start(self, job_id: str) -> float | None:
        if job_id not in self.jobs or self.position(job_id) == 0:  # running, or about to
            return 0.0
        running = tuple((self.jobs[other].job.state, self.jobs[other].eta) for other in self.running
                        if other in self.jobs)
        key = (self._changes, self.speed.seconds_per_unit, running)
        if self._starts[0] != key:
            self._starts = (key, self._start_times())
        return self._starts[1][job_id]

    def _start_times(self) -> dict[str, float | None]:
        """Seconds until each waiting job starts: the running batch, then every job ahead of it (None from the
        first job whose length is unknown on)."""
        starts: dict[str, float | None] = {}
        clock = self.engine_free_in()
        for job_id in self.waiting:
            starts[job_id] = clock
            if clock is not None:
                length = self.remaining(job_id)
                clock = None if length is None else clock + length
        return starts

    def eta_until_free(self, user_id: int) -> float | None:
        """Seconds until the first of this user's active jobs finishes."""
        ends = []
        for active in self.of_user(user_id):
            start, length = self.eta_until_start(active.id), self.remaining(active.id)
            if start is not None and length is not None:
                ends.append(start + length)
        return min(ends, default=None)
