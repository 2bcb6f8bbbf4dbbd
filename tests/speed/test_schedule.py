"""The coarse-to-fine schedule: an exact iteration bound, sizes within bounds, most iterations coarse but a
guaranteed share at the output size; the torch-free cost estimate that follows it."""

from __future__ import annotations

import itertools

import pytest

from nst_engine.options import FINEST_SHARE, QUALITY_LEVELS, StylizeOptions, scale_schedule


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
    # Below the output size, coarser scales never get fewer iterations than finer ones (up to rounding).
    assert all(coarse >= fine - 1 for coarse, fine in zip(counts[:-1], counts[1:-1]))
    if len(schedule) > 1:  # the output size keeps its share (up to rounding and the one per coarser scale)
        assert counts[-1] >= min(FINEST_SHARE * iterations - 1, iterations - len(schedule) + 1)


def test_default_recipes_spend_most_iterations_below_the_output_size():
    defaults = StylizeOptions()
    for level in QUALITY_LEVELS.values():
        schedule = scale_schedule(level.size, level.iterations, defaults.min_scale, defaults.scale_ratio)
        assert len(schedule) >= 2, level
        assert schedule[-1].iterations < level.iterations / 2, level


@pytest.mark.parametrize("size, iterations, finest", [(1024, 80, 16), (768, 120, 24), (512, 80, 16), (384, 80, 27)])
def test_the_output_size_keeps_enough_iterations(size, iterations, finest):
    """At 1024 px the geometric split left 5 of 80 iterations at the output size; two-scale schedules
    (up to 2 × min_scale) keep their 2:1 split."""
    assert StylizeOptions(size=size, iterations=iterations).schedule()[-1].iterations == finest


def test_cost_weighs_iterations_by_pixels_and_follows_the_schedule():
    options = StylizeOptions(size=512, iterations=80)  # 128, 256, 512 px: 43, 21, 16 iterations
    assert [(s.long_side, s.iterations) for s in options.schedule()] == [(128, 43), (256, 21), (512, 16)]
    assert options.cost((1024, 768)) == 128 * 96 * 43 + 256 * 192 * 21 + 512 * 384 * 16
    assert options.cost((768, 1024)) == options.cost((1024, 768))  # the long side is what counts
    assert StylizeOptions(size=1024, iterations=80).cost((1024, 768)) > 3 * options.cost((1024, 768))
    assert 1.9 < options.replace(iterations=160).cost((1024, 768)) / options.cost((1024, 768)) < 2.1


def test_batch_key_changes_with_everything_that_changes_the_schedule():
    options = StylizeOptions(size=512, iterations=80)
    key = options.batch_key((640, 480))
    for change in ({"size": 384}, {"iterations": 81}, {"min_scale": 64}, {"scale_ratio": 1.5}):
        changed = options.replace(**change)
        assert changed.schedule() != options.schedule()
        assert changed.batch_key((640, 480)) != key
    assert options.replace(seed=3, strength=2.0, preserve_colors="luminance").batch_key((640, 480)) == key
