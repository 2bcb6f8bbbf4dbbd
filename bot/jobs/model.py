"""What a job is: the stored record (:class:`Job`) and what the core knows about it while it is active."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from nst_engine.options import StylizeOptions

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
MAX_STYLES = 3  # style images (uploads or presets) one job may blend


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Job:
    """One stylize request and everything needed to run and deliver it (one row of the store)."""

    id: str
    user_id: int
    user_name: str
    guild_id: int | None
    channel_id: int
    style_label: str
    quality: str
    options: StylizeOptions
    notes: list[str] = field(default_factory=list)
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    status_message_id: int | None = None
    result_message_id: int | None = None
    iterations_done: int = 0
    attempts: int = 0
    error: str = ""
    parent_id: str | None = None
    device: str | None = None  # where it ran, as the engine reported it
    frames: int = 1  # frames of an animated content (kept in its content.png as an animated PNG); 1: a still

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def animated(self) -> bool:
        return self.frames > 1


@dataclass
class ActiveJob:
    """A queued or running job with its live progress, which the store does not keep."""

    job: Job
    iteration: int = 0
    total: int = 0
    eta: float | None = None
    preview: bytes | None = None
    stopping_by: str | None = None  # who asked to cancel it while it ran
    batch_key: tuple | None = None  # computed once, the first time a batch is put together
    frame: int = 0  # of an animation: the frame being stylised (1-based) of ``frames``
    frames: int = 0

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def fraction(self) -> float:
        total = self.total or self.job.options.iterations
        return self.iteration / total if total else 0.0

    def restart(self) -> None:
        """Forget the progress of an earlier run (the job is about to run, or run again)."""
        self.iteration, self.total, self.eta, self.preview = 0, self.job.options.iterations, None, None
        self.frame, self.frames = 0, 0
