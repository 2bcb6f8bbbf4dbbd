"""Which waiting jobs run together: the engine optimises jobs with one batch key side by side."""

from __future__ import annotations

from typing import Callable, Hashable, Sequence


def choose_batch(waiting: Sequence[str], batch_size: int, key: Callable[[str], Hashable | None]) -> list[str]:
    """The first waiting job, and up to ``batch_size`` - 1 later ones with its key, in queue order.

    ``key`` is None for a job that must run alone (a retried job, in case the batch was what failed).
    """
    if not waiting:
        return []
    head = waiting[0]
    wanted = key(head) if batch_size > 1 else None
    if wanted is None:
        return [head]
    batch = [head]
    for job_id in waiting[1:]:
        if len(batch) >= batch_size:
            break
        if key(job_id) == wanted:
            batch.append(job_id)
    return batch
