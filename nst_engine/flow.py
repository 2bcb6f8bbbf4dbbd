"""Motion between two input frames, for temporally coherent animations (Ruder, Dosovitskiy and Brox 2016).

The optical flow itself is OpenCV's DIS (dense inverse search, ``cv2.DISOpticalFlow_create``; package
``opencv-python-headless``): a maintained, fast dense flow that needs no GPU and no model weights, which suits a
self-hosted bot. This module adds only what the paper adds around a flow:

- the backward flow (from the new frame to the previous one) says where each new pixel was, so the previous
  *stylised* frame can be warped onto the new frame (``Motion.warp``);
- a forward–backward consistency check marks pixels as not trustworthy where the two flows disagree
  (disocclusions: the pixel was hidden before) or where the flow changes sharply (motion boundaries), and where
  the motion comes from outside the picture; the temporal loss counts only the trusted pixels (``Motion.mask``);
- beyond the paper, a photometric check: a pixel whose new value is far from the previous frame's where the
  flow says it came from is one the flow got wrong, and is not trusted either. Both flows can agree on the
  wrong answer: a flat object moving about its own size over a texture (the benchmark's ball) gets almost no
  flow from DIS's patch matching, and a trusted zero flow would hold the stale picture — the object would stay
  where it was in the first frame.

Torch-free (numpy and OpenCV); works in pixels of the frames it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# Ruder et al.'s thresholds: a pixel is disoccluded when |b + f̃|² > CONSISTENCY_SHARE (|b|² + |f̃|²) +
# CONSISTENCY_SLACK (flows in pixels), and on a motion boundary when |∇b|² > BOUNDARY_SHARE |b|² + BOUNDARY_SLACK.
CONSISTENCY_SHARE = 0.01
CONSISTENCY_SLACK = 0.5
BOUNDARY_SHARE = 0.01
BOUNDARY_SLACK = 0.002
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM  # both flows and the check: ~0.2 s for 320×200 frames here
MIN_FLOW_SIDE = 16  # DIS works on 8-px patches over a pyramid; smaller frames get no flow (all untrusted)
PHOTOMETRIC_SLACK = 24  # grey levels (of 255) a pixel may differ from where the flow says it was, and be trusted
MISMATCH_GROWTH = 5  # a mismatch is grown by 2 px each way (5×5): an object's edge blurs over a pixel or two


@dataclass(frozen=True)
class Motion:
    """Where each pixel of the new frame was in the previous one (``sample_x``/``sample_y``, float32 maps for
    ``cv2.remap``) and which pixels that is trustworthy for (``mask``: float32, 1 trusted, 0 not)."""

    sample_x: np.ndarray
    sample_y: np.ndarray
    mask: np.ndarray

    def warp(self, previous: np.ndarray) -> np.ndarray:
        """``previous`` (H×W×C, the previous frame's stylised result) moved along the motion onto the new frame;
        pixels coming from outside take the nearest border pixel."""
        return cv2.remap(previous, self.sample_x, self.sample_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    @property
    def trusted_share(self) -> float:
        return float(self.mask.mean())


def grey(image: Image.Image) -> np.ndarray:
    """The 8-bit luma plane the flow is computed on."""
    return np.asarray(image.convert("L"))


def frame_motion(previous: np.ndarray, current: np.ndarray) -> Motion:
    """The motion from ``previous`` to ``current`` (8-bit grey frames of one size), with its consistency mask."""
    height, width = current.shape
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    if min(height, width) < MIN_FLOW_SIDE:
        return Motion(columns, rows, np.zeros((height, width), np.float32))
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    backward = dis.calc(current, previous, None)  # current(x) ≈ previous(x + backward(x))
    forward = dis.calc(previous, current, None)  # previous(y) ≈ current(y + forward(y))
    sample_x, sample_y = columns + backward[..., 0], rows + backward[..., 1]
    # The forward flow where each new pixel came from: it should lead back, i.e. be minus the backward flow.
    returned = cv2.remap(forward, sample_x, sample_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = np.square(backward + returned).sum(-1)
    scale = np.square(backward).sum(-1) + np.square(returned).sum(-1)
    consistent = mismatch <= CONSISTENCY_SHARE * scale + CONSISTENCY_SLACK
    gradient = sum(np.square(np.gradient(backward[..., channel], axis=axis))
                   for channel in (0, 1) for axis in (0, 1))
    smooth = gradient <= BOUNDARY_SHARE * np.square(backward).sum(-1) + BOUNDARY_SLACK
    inside = (sample_x >= 0) & (sample_x <= width - 1) & (sample_y >= 0) & (sample_y <= height - 1)
    was = cv2.remap(previous, sample_x, sample_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatched = (np.abs(was.astype(np.float32) - current) > PHOTOMETRIC_SLACK).astype(np.uint8)
    matched = cv2.dilate(mismatched, np.ones((MISMATCH_GROWTH, MISMATCH_GROWTH), np.uint8)) == 0
    return Motion(sample_x, sample_y, (consistent & smooth & inside & matched).astype(np.float32))
