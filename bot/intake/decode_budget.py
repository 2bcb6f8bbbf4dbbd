"""How much decoder CPU time each member has used lately: a refused upload costs the decoders as much as an
accepted one, but starts no cooldown, so without this one member could keep every decoder busy back to back.

Each decode is charged to its requester (the CPU seconds the decoder process reports, or the whole time limit
for a decode that had to be stopped); a requester whose charges in the last ``window`` seconds reach
``seconds`` is refused before the next decode starts, until the oldest charges age out.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Callable, Hashable

from nst_engine.errors import ImageError


class DecodeBudgetSpent(ImageError):
    """The requester used up their decode time; the message says when they can upload again."""


class DecodeBudget:
    def __init__(self, seconds: float, window: float, clock: Callable[[], float] = time.time) -> None:
        self.seconds, self.window, self.clock = seconds, window, clock
        self._charges: dict[Hashable, deque[tuple[float, float]]] = defaultdict(deque)  # (when, CPU seconds)

    def charge(self, requester: Hashable, cpu_seconds: float) -> None:
        if requester is not None and cpu_seconds > 0:
            self._charges[requester].append((self.clock(), cpu_seconds))

    def check(self, requester: Hashable, what: str) -> None:
        """Raises :class:`DecodeBudgetSpent` if ``requester`` has no decode time left in the window."""
        if requester is None or not self.seconds:
            return
        now = self.clock()
        charges = self._charges.get(requester)
        while charges and charges[0][0] <= now - self.window:
            charges.popleft()
        if not charges:
            self._charges.pop(requester, None)
            return
        spent = sum(seconds for _, seconds in charges)
        if spent < self.seconds:
            return
        free_at, left = now, spent  # when enough of the oldest charges have aged out to go under the budget
        for when, seconds in charges:
            free_at, left = when + self.window, left - seconds
            if left < self.seconds:
                break
        raise DecodeBudgetSpent(f"Your recent uploads took {spent:.0f} s of this bot's image-decoding time (the "
                                f"limit is {self.seconds:g} s per {self.window / 60:g} minutes), so the {what} was "
                                f"not decoded; you can upload again <t:{int(free_at) + 1}:R>.")
