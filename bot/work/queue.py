"""The work-queue contract between the job core and the engines that run its jobs.

The core owns the queue order, admission, retries and delivery; a work queue only runs what it is handed and
reports what happens, as :mod:`bot.work.protocol` events on :attr:`WorkQueue.events`. Two backends implement
it: the local engine process (default, one machine) and ``nst-bot worker`` processes reached through Redis.

Rules every backend keeps, so the core stays the same:
- :meth:`WorkQueue.free_slots` says how many more jobs it takes now; the core never hands over more. The local
  backend takes one batch when idle; a Redis backend takes what its workers can start soon.
- Every job handed over ends in exactly one of ``Done``, ``Failed`` or ``Lost`` (``Lost``: its engine went away —
  killed, crashed, timed out, machine gone — and the core's retry policy decides whether it runs again).
- :meth:`WorkQueue.cancel` stops a running job within one optimiser iteration (it then ends in ``Done`` with
  ``cancelled=True``); :meth:`WorkQueue.abort` stops it by force (it ends in ``Lost``).
- ``Ready``/``Fatal`` tell the core whether engines are available; :meth:`WorkQueue.start` raises
  :class:`WorkUnavailable` when none can start at all (for example no weights), with a message for the admin.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Sequence

from .protocol import Event, JobSpec


class WorkUnavailable(Exception):
    """No engine can run jobs (no weights, Redis unreachable, …); the message says why, in one line."""


class WorkQueue(abc.ABC):
    def __init__(self) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    @abc.abstractmethod
    async def start(self) -> None:
        """Bring the engines up; returns once jobs can be handed over, raises :class:`WorkUnavailable`."""

    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more jobs :meth:`submit` takes now."""

    @abc.abstractmethod
    async def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Hand over jobs that may share one batch (all with one ``StylizeOptions.batch_key``)."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> None:
        """Ask the engine running (or holding) ``job_id`` to stop it at the next iteration."""

    @abc.abstractmethod
    async def abort(self, job_id: str) -> None:
        """Stop ``job_id`` by force (time limit passed); it ends in a ``Lost`` event."""

    def refusal(self) -> str | None:
        """Why new jobs cannot be queued right now (e.g. Redis unreachable), in words for the requester; None
        when they can. Jobs already handed over wait; this only keeps new requests from piling up."""
        return None

    def memory_budget_mb(self) -> float | None:
        """The most memory one job or batch may use on every engine, when the engines announce it (Redis
        workers do); None: only the bot's own ``[engine] max_job_memory_mb`` applies."""
        return None

    @abc.abstractmethod
    def workers(self) -> int:
        """Engines connected now (for /queue, /help and the metrics)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the engines this process started and release connections."""
