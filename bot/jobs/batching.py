"""Which waiting jobs run together: the engine optimises jobs with one batch key side by side, as many as the
configured batch size and the engine's memory budget allow."""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

from nst_engine.cost import JobCost, batch_peak_mb


def choose_batch(waiting: Sequence[str], batch_size: int, key: Callable[[str], Hashable | None],
                 cost: Callable[[str], JobCost] | None = None, budget_mb: float | None = None) -> list[str]:
    """The first waiting job, and up to ``batch_size`` - 1 later ones with its key, in queue order, while the
    batch's predicted peak (``cost`` of each job, nst_engine.cost.batch_peak_mb) stays within ``budget_mb``.

    ``key`` is None for a job that must run alone (a retried job, in case the batch was what failed). The first
    job goes whatever its cost: admission refused the ones over the budget.
    """
    if not waiting:
        return []
    head = waiting[0]
    wanted = key(head) if batch_size > 1 else None
    if wanted is None:
        return [head]
    batch = [head]
    costs = [cost(head)] if cost and budget_mb else []
    for job_id in waiting[1:]:
        if len(batch) >= batch_size:
            break
        if key(job_id) != wanted:
            continue
        if costs:
            candidate = cost(job_id)
            if batch_peak_mb([*costs, candidate]) > budget_mb:
                continue
            costs.append(candidate)
        batch.append(job_id)
    return batch
