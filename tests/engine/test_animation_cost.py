"""animation_cost: an animation is admitted as the work it is — frames × pixels × iterations."""

from __future__ import annotations

import dataclasses

from nst_engine.cost import animation_cost, job_cost, later_frame_iterations, later_frame_options
from nst_engine.options import StylizeOptions

SIZE = (640, 360)
STYLES = [(512, 512)]


def test_one_frame_costs_what_a_still_job_costs():
    options = StylizeOptions()
    assert animation_cost(options, SIZE, 1, STYLES) == job_cost(options, SIZE, STYLES)


def test_later_frames_add_their_fewer_iterations_at_the_output_size():
    options = StylizeOptions()
    first = job_cost(options, SIZE, STYLES)
    later = later_frame_options(options)
    assert later.iterations == later_frame_iterations(options) < options.iterations
    assert [scale.long_side for scale in later.schedule()] == [options.size] and later.seed == 0
    ten, twenty = (animation_cost(options, SIZE, frames, STYLES) for frames in (10, 20))
    per_frame = (twenty.work - ten.work) / 10
    assert ten.work > first.work + 9 * per_frame * 0.99
    assert per_frame < first.work  # a warm-started frame is cheaper than a whole job
    assert ten.peak_mb > first.peak_mb  # the frames and the flow are held beside one frame's job


def test_frames_one_by_one_cost_a_whole_job_each():
    options = dataclasses.replace(StylizeOptions(), temporal_weight=0.0)
    coherent = animation_cost(StylizeOptions(), SIZE, 12, STYLES)
    alone = animation_cost(options, SIZE, 12, STYLES)
    first = job_cost(options, SIZE, STYLES)
    assert alone.work > coherent.work
    assert first.work * 11 < alone.work < first.work * 12  # the style targets are still made only once


def test_more_frames_or_pixels_or_iterations_cost_more_work():
    options = StylizeOptions()
    base = animation_cost(options, SIZE, 8, STYLES).work
    assert animation_cost(options, SIZE, 16, STYLES).work > base
    assert animation_cost(options.replace(size=768), SIZE, 8, STYLES).work > base
    assert animation_cost(options.replace(iterations=160), SIZE, 8, STYLES).work > base
