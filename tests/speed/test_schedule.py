"""The coarse-to-fine schedule: an exact iteration bound, sizes within bounds, most iterations coarse."""

from __future__ import annotations

import itertools

import pytest

from nst_engine.options import QUALITY_LEVELS, StylizeOptions
from nst_engine.transfer import scale_schedule


@pytest.mark.parametrize("size, iterations, min_scale, ratio", list(itertools.product(
    (16, 64, 97, 256, 384, 512, 768, 1024, 4096), (1, 2, 3, 10, 150, 1000), (16, 64, 128, 256), (1.5, 2.0, 3.0))))
def test_schedule_bounds(size, iterations, min_scale, ratio):
    schedule = scale_schedule(size, iterations, min_scale, ratio)
    sides = [scale.long_side for scale in schedule]
    counts = [scale.iterations for scale in schedule]
    assert sum(counts) == iterations and min(counts) >= 1
    assert sides[-1] == size and sides == sorted(set(sides))
    assert all(side >= min_scale for side in sides[:-1])  # only the output size may be below min_scale
    assert len(schedule) <= iterations
    # Coarser scales never get fewer iterations than finer ones (up to the rounding of one).
    assert all(coarse >= fine - 1 for coarse, fine in zip(counts, counts[1:]))


def test_default_recipes_spend_most_iterations_below_the_output_size():
    defaults = StylizeOptions()
    for level in QUALITY_LEVELS.values():
        schedule = scale_schedule(level.size, level.iterations, defaults.min_scale, defaults.scale_ratio)
        assert len(schedule) >= 2, level
        assert schedule[-1].iterations < level.iterations / 2, level
