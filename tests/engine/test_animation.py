"""Engine.stylize_animation: coherent frames flicker less than frames stylised one by one and still move with the
input, the timing is kept, progress reports frame k of n, a stop ends the run within one iteration, and the style
targets are made once."""

from __future__ import annotations

import numpy as np
import pytest

from nst_engine.animation import Animation
from nst_engine.cost import animation_iterations, later_frame_iterations
from nst_engine.options import StylizeOptions
from nst_engine.testing import ball_scene
from nst_engine.transfer import Engine, _Batch
from tests.conftest import make_style

FRAMES = 5
TINY = dict(size=48, min_scale=24, iterations=8)


@pytest.fixture(scope="module")
def engine(vgg_weights) -> Engine:
    return Engine(str(vgg_weights))


@pytest.fixture(scope="module")
def scene():
    animation, still = ball_scene((48, 32), FRAMES)
    return Animation(animation.frames, (70, 80, 90, 100, 110), 2), still


def flicker(animation: Animation, still: np.ndarray) -> float:
    """Mean absolute change between consecutive frames over the pixels where the input stands still."""
    frames = [np.asarray(frame, np.float32) for frame in animation.frames]
    return float(np.mean([np.abs(b - a)[still].mean() for a, b in zip(frames, frames[1:])]))


@pytest.fixture(scope="module")
def runs(engine, scene):
    animation, _ = scene
    seen: list = []
    coherent = engine.stylize_animation(animation, [make_style()], StylizeOptions(**TINY), on_progress=seen.append)
    alone = engine.stylize_animation(animation, [make_style()], StylizeOptions(**TINY, temporal_weight=0))
    return coherent, alone, seen


def test_coherent_frames_flicker_less_than_frames_one_by_one(runs, scene):
    coherent, alone, _ = runs
    _, still = scene
    assert flicker(coherent.animation, still) < flicker(alone.animation, still)


def red(frame) -> np.ndarray:
    pixels = np.asarray(frame, np.float32)
    return pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2


def test_the_coherent_ball_moves_with_the_input_and_leaves_no_ghost(runs, scene):
    """Low flicker alone would also reward a result that never moves: the ball, which DIS's flow barely follows
    here, must be where the input has it in every frame, not where it started."""
    coherent, _, _ = runs
    animation, _ = scene
    balls = [red(frame) > 100 for frame in animation.frames]
    for k in range(2, FRAMES):
        out = red(coherent.animation.frames[k])
        assert out[balls[k]].mean() > out[balls[0] & ~balls[k]].mean() + 60, k


def test_the_timing_and_frame_count_are_kept(runs, scene):
    animation, _ = scene
    for result in runs[:2]:
        assert result.animation.frame_count == FRAMES
        assert result.animation.durations_ms == animation.durations_ms and result.animation.loop == 2
        assert result.animation.size == (48, 32) and not result.cancelled
        assert len(result.losses) == FRAMES


def test_later_frames_run_fewer_iterations(runs):
    coherent, alone, _ = runs
    later = later_frame_iterations(StylizeOptions(**TINY))
    assert later < TINY["iterations"]
    assert coherent.iterations == TINY["iterations"] + (FRAMES - 1) * later
    assert alone.iterations == FRAMES * TINY["iterations"]
    assert animation_iterations(StylizeOptions(**TINY), FRAMES) == coherent.iterations
    assert "temporal" in coherent.losses[-1] and "temporal" not in alone.losses[-1]


def test_progress_reports_frame_k_of_n_over_the_whole_animation(runs):
    coherent, _, seen = runs
    assert [p.frame for p in seen] == sorted(p.frame for p in seen)
    assert {p.frame for p in seen} == set(range(1, FRAMES + 1)) and {p.frames for p in seen} == {FRAMES}
    assert [p.iteration for p in seen] == list(range(1, coherent.iterations + 1))
    assert {p.total for p in seen} == {coherent.iterations} and seen[-1].fraction == 1.0
    assert seen[0].eta is not None and seen[-1].eta == pytest.approx(0.0, abs=1e-6)


def test_a_stop_ends_the_run_within_one_iteration(engine, scene):
    animation, _ = scene
    seen: list = []
    stop_after = TINY["iterations"] + 2  # two iterations into the second frame

    result = engine.stylize_animation(animation, [make_style()], StylizeOptions(**TINY), on_progress=seen.append,
                                      should_stop=lambda: len(seen) >= stop_after)
    assert result.cancelled and len(seen) == stop_after
    assert result.animation.frame_count == 1  # the finished first frame; the stopped one is not half kept
    assert result.animation.durations_ms == animation.durations_ms[:1]


def test_the_style_targets_are_made_once_for_all_frames(engine, scene, monkeypatch):
    animation, _ = scene
    made = []
    original = _Batch._style_grams
    monkeypatch.setattr(_Batch, "_style_grams", lambda self, job, styles: made.append(1) or original(self, job, styles))
    options = StylizeOptions(**TINY)
    engine.stylize_animation(Animation(animation.frames[:3], animation.durations_ms[:3]), [make_style()], options)
    assert len(made) == len(options.schedule())  # the first frame's scales; the later frames reuse the last
