"""The motion between two input frames (nst_engine/flow.py) on the ball scene: a flat ball moving about its own
size per frame over a texture, which DIS's patch matching barely follows. The pixels the flow gets wrong must not
be trusted (else the temporal loss and the warm start would keep the ball where it was), the still scene must."""

from __future__ import annotations

import numpy as np
import pytest

from nst_engine.flow import frame_motion, grey
from nst_engine.testing import ball_scene


def ball(frame) -> np.ndarray:
    pixels = np.asarray(frame, np.float32)
    return pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2 > 100  # the red ball


@pytest.mark.parametrize("size", [(48, 32), (80, 50), (320, 200)])
def test_where_the_ball_arrives_or_leaves_is_not_trusted_and_the_still_scene_is(size) -> None:
    scene, still = ball_scene(size, 8)
    arrived_or_left, kept = [], []
    for k in range(1, scene.frame_count):
        motion = frame_motion(grey(scene.frames[k - 1]), grey(scene.frames[k]))
        arrived_or_left.append(motion.mask[ball(scene.frames[k]) ^ ball(scene.frames[k - 1])].mean())
        kept.append(motion.mask[still].mean())
    assert np.mean(arrived_or_left) < 0.1, arrived_or_left  # with the two flows alone: 1.0, 0.84 and 0.13
    assert np.mean(kept) > 0.8, kept


def test_the_trusted_pixels_really_are_where_the_flow_says() -> None:
    scene, _ = ball_scene((80, 50), 4)
    previous, current = (np.asarray(frame) for frame in scene.frames[1:3])
    motion = frame_motion(grey(scene.frames[1]), grey(scene.frames[2]))
    error = np.abs(motion.warp(previous).astype(np.float32) - current).max(-1)
    assert error[motion.mask > 0].mean() < 8 < error[motion.mask == 0].mean()
