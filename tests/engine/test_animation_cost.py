"""animation_cost: an animation is admitted as the work it is — frames × pixels × iterations."""

from __future__ import annotations

import dataclasses

import pytest

from nst_engine.cost import (FIXED_MB, FORWARD_SHARE, GPU_FIXED_MB, MB, animation_cost, animation_iterations, job_cost,
                             later_frame_iterations, later_frame_options, scale_terms)
from nst_engine.options import TEMPORAL_WEIGHT as TEMPORAL
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


def test_later_frames_run_a_quarter_of_the_iterations_but_at_least_four() -> None:
    assert [later_frame_iterations(StylizeOptions(iterations=n)) for n in (100, 8, 3)] == [25, 4, 3]
    assert animation_iterations(StylizeOptions(iterations=100), 10) == 100 + 9 * 25
    assert animation_iterations(StylizeOptions(iterations=100, temporal_weight=0.5), 10) == 100 + 9 * 25
    assert animation_iterations(StylizeOptions(iterations=100, temporal_weight=0.0), 10) == 100 * 10
    assert [animation_iterations(StylizeOptions(iterations=100), frames) for frames in (1, 0)] == [100, 100]


def test_a_later_frame_drops_the_seed_jitter() -> None:
    assert later_frame_options(StylizeOptions(seed=7)).seed == 0


def test_the_frames_and_flows_held_are_added_to_the_larger_frame_job() -> None:
    """Every frame in and out as 8-bit RGB (the content's 640×360 in, 512×288 out), and with temporal coherence
    the flows, warped frame, mask and temporal term: 48 bytes per output pixel."""
    for weight, flows in ((TEMPORAL, 48 * 512 * 288), (0.0, 0)):
        options = StylizeOptions(temporal_weight=weight)
        first = job_cost(options, SIZE, STYLES)
        later = job_cost(later_frame_options(options) if weight else options, SIZE, STYLES)
        held = 2 * 3 * 8 * (640 * 360 + 512 * 288)
        eight = animation_cost(options, SIZE, 8, STYLES)
        assert eight.peak_mb == pytest.approx(max(first.peak_mb, later.peak_mb) + (held + flows) / MB, abs=1e-9)
        assert eight.fixed_mb == first.fixed_mb == FIXED_MB


def test_a_later_frames_work_leaves_out_the_style_passes_made_once() -> None:
    options = StylizeOptions(temporal_weight=0.5)  # any weight over 0 is temporal
    later_options = later_frame_options(options)
    style_passes = sum(term.all_styles for term in scale_terms(later_options, SIZE, STYLES))
    later_work = job_cost(later_options, SIZE, STYLES).work - FORWARD_SHARE * style_passes
    for frames in (2, 5):
        work = animation_cost(options, SIZE, frames, STYLES).work
        assert work == pytest.approx(job_cost(options, SIZE, STYLES).work + (frames - 1) * later_work)


def test_an_animation_is_costed_on_the_device_asked_for() -> None:
    options = StylizeOptions(precision="bf16")
    assert animation_cost(options, SIZE, 1, STYLES, device="cuda") == job_cost(options, SIZE, STYLES, device="cuda")

    def largest_frame_job(device: str) -> float:
        return max(job_cost(chosen, SIZE, STYLES, device=device).peak_mb
                   for chosen in (options, later_frame_options(options)))

    on_gpu, on_cpu = (animation_cost(options, SIZE, 8, STYLES, device=device) for device in ("cuda", "cpu"))
    assert on_gpu.fixed_mb == GPU_FIXED_MB and largest_frame_job("cuda") < largest_frame_job("cpu")
    assert on_gpu.peak_mb - largest_frame_job("cuda") == pytest.approx(on_cpu.peak_mb - largest_frame_job("cpu"),
                                                                         abs=1e-9)  # the frames held are the same
