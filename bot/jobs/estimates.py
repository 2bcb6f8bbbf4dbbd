"""How long jobs take: the engine's speed, learned from finished jobs, in seconds per unit of the cost model's work
(nst_engine.cost)."""

from __future__ import annotations

SPEED_MEMORY = 0.7  # weight of what was learned before against the latest job


class SpeedModel:
    """Seconds per work unit, a moving average over finished jobs; unknown until the first one finishes."""

    def __init__(self) -> None:
        self.seconds_per_unit: float | None = None

    def learn(self, units: float, seconds: float) -> None:
        if units <= 0 or seconds <= 0:
            return
        rate = seconds / units
        known = self.seconds_per_unit
        self.seconds_per_unit = rate if known is None else SPEED_MEMORY * known + (1 - SPEED_MEMORY) * rate

    def estimate(self, units: float) -> float | None:
        return self.seconds_per_unit * units if self.seconds_per_unit is not None else None
