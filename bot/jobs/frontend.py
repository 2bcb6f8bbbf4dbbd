"""What the job core asks of the front end that shows jobs to people (the Discord face implements it).

The core decides; the front end only shows: a status when something changed, the result when it is made, the
outcome when a job ends. It never reaches back into the core's state except through :class:`~.core.JobCore`.
"""

from __future__ import annotations

from typing import Protocol

from .model import ActiveJob, Job


class DeliveryFailed(Exception):
    """The result was made but could not be posted; the message is for the requester."""


class Frontend(Protocol):
    async def show(self, active: ActiveJob) -> None:
        """The job started, or stopped being cancellable: show its status now rather than at the next tick."""

    async def deliver(self, job: Job, elapsed: float | None, result: str) -> int:
        """Post the result image at path ``result`` once; the message id. ``elapsed`` None: the job was resumed
        after a restart and its result may already be posted. Raises :class:`DeliveryFailed`."""

    async def concluded(self, active: ActiveJob) -> None:
        """The job ended (done, failed or cancelled; ``active.job`` says which and why): show it."""
