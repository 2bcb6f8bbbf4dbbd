"""Admission: whether a request may become a job now, held for as long as the request is being processed.

``with admission.admit(user_id):`` refuses with :class:`~bot.errors.UserError` (saying what was exceeded and
when to retry) or holds a place until the block ends, however it ends. Requests still being processed (their
images downloading, say) count against every limit, the cooldown included, so simultaneous requests cannot
slip past a limit that each alone would meet.

``with admission.handling():`` counts a request from the moment it arrives, before anything is sent to Discord;
past ``[limits] max_in_flight`` it raises :class:`Busy`, whose message is then the request's first and only
answer, sent at once: a bot past its capacity says so instead of answering after Discord's 3 seconds.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator

from bot.config import LimitsConfig
from bot.errors import UserError
from bot.ops.terminal import format_seconds

from .lineup import Lineup

BUSY = "The bot is very busy right now; please try again in a minute."


class Busy(UserError):
    """More requests are being handled than ``[limits] max_in_flight``."""


class Admission:
    def __init__(self, limits: LimitsConfig, lineup: Lineup, last_created_by: Callable[[int], float | None],
                 clock: Callable[[], float] = time.time) -> None:
        self.limits, self.lineup, self.last_created_by, self.clock = limits, lineup, last_created_by, clock
        self.in_flight: dict[int, list[float]] = defaultdict(list)  # user → start times of requests in process
        self.handled = 0  # requests between their arrival and their end (see handling)

    def pending(self) -> int:
        return sum(len(starts) for starts in self.in_flight.values())

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Count a request while it is handled; :class:`Busy` when ``max_in_flight`` are already."""
        if self.handled >= self.limits.max_in_flight:
            raise Busy(BUSY)
        self.handled += 1
        try:
            yield
        finally:
            self.handled -= 1

    @contextmanager
    def admit(self, user_id: int, limits: LimitsConfig | None = None) -> Iterator[None]:
        """``limits``: those in force where the request came from (a server's own, within the config's)."""
        now = self.clock()
        self.check(user_id, now, limits)
        self.in_flight[user_id].append(now)
        try:
            yield
        finally:
            self.in_flight[user_id].remove(now)
            if not self.in_flight[user_id]:
                del self.in_flight[user_id]

    def check(self, user_id: int, now: float, limits: LimitsConfig | None = None) -> None:
        limits = limits or self.limits
        mine = len(self.lineup.of_user(user_id)) + len(self.in_flight.get(user_id, ()))
        if mine >= limits.max_jobs_per_user:
            eta = self.lineup.eta_until_free(user_id)
            when = f" — about {format_seconds(eta)}" if eta is not None else ""
            raise UserError(f"You already have {mine} job(s) queued or running (the limit is "
                            f"{limits.max_jobs_per_user}). Try again when one finishes{when}.")
        if len(self.lineup.jobs) + self.pending() >= limits.max_queue:
            eta = self.lineup.engine_free_in() if self.lineup.running else None  # a slot frees with the batch
            when = f"in about {format_seconds(eta)}" if eta is not None else "in a few minutes"
            raise UserError(f"The queue is full ({limits.max_queue} jobs). Please try again {when}.")
        starts = [*self.in_flight.get(user_id, ()), self.last_created_by(user_id) or 0.0]
        last = max(starts)
        if last and now - last < limits.cooldown_seconds:
            retry = int(last + limits.cooldown_seconds) + 1
            raise UserError(f"Please wait {limits.cooldown_seconds:g} s between requests; "
                            f"you can try again <t:{retry}:R>.")
