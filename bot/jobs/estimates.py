"""How long jobs take: a job's work in the cost model's unit, and the engine's speed learned from finished jobs."""

from __future__ import annotations

from typing import Sequence

from nst_engine.cost import job_cost
from nst_engine.options import StylizeOptions

SPEED_MEMORY = 0.7  # weight of what was learned before against the latest job


def work_units(options: StylizeOptions, content_size: tuple[int, int],
               style_sizes: Sequence[tuple[int, int]] = ()) -> float:
    """A job's work as nst_engine.cost counts it: framed pixels × passes over its scales (its iterations, and
    the forward passes that make its targets, styles included), so coarse-scale iterations count for what they
    cost and a large style image for what it adds."""
    return job_cost(options, content_size, style_sizes).work


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
