"""What happens to a job whose engine went away (process died, worker lost, time limit): the retry policy."""

from __future__ import annotations

from bot.ops.terminal import format_seconds

from .model import CANCELLED, FAILED, QUEUED, ActiveJob

MAX_ATTEMPTS = 2  # a job whose engine dies is retried once, alone
ENGINE_DIED = "The engine stopped unexpectedly while working on this image; please try again with a smaller size."


def after_lost(active: ActiveJob, *, timed_out: bool, time_limit: float) -> tuple[str, str]:
    """The job's next state and the sentence for its requester (empty when it runs again).

    A job someone was stopping counts as cancelled; one stopped for its time limit fails with the limit named
    (running it again would only hit the limit again); otherwise it runs once more before it fails.
    """
    if active.stopping_by:
        return CANCELLED, f"Cancelled by {active.stopping_by}."
    if timed_out:
        return FAILED, (f"This image took longer than the time limit ({format_seconds(time_limit)}) and was "
                        "stopped; try a lower quality or size.")
    if active.job.attempts < MAX_ATTEMPTS:
        return QUEUED, ""
    return FAILED, ENGINE_DIED
