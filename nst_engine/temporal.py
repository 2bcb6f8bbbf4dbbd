"""Temporally coherent stylisation of an animation, in the manner of Ruder, Dosovitskiy and Brox (2016).

The first frame is an ordinary job (the whole coarse-to-fine schedule). Every later frame:

1. measures the motion from the previous *input* frame to its own (:func:`nst_engine.flow.frame_motion`: DIS
   optical flow both ways, with a forward–backward consistency mask);
2. starts from the previous *stylised* frame warped along that motion where the mask trusts it (elsewhere from
   its own content, as a still job does), at the output size only, so the style already sits where the picture
   has not changed and only the changes need work — hence its fewer iterations
   (:func:`nst_engine.cost.later_frame_iterations`);
3. adds a temporal loss, ``temporal_weight`` × the mean squared difference from that warped frame over the
   pixels the mask trusts, so the optimisation does not drift where nothing moved.

All frames share one set of style targets (and colour gain), computed by the first frame's job. With
``temporal_weight`` 0 every frame is a whole job on its own (the comparison benchmarks/animation.py makes).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import color
from .animation import Animation, AnimationResult
from .cost import later_frame_options
from .errors import NSTError
from .flow import Motion, frame_motion, grey
from .images import ImageSource, scaled_size
from .options import StylizeOptions
from .transfer import BatchRequest, Engine, Progress, ProgressCallback, StopCheck


class TemporalLoss:
    """``weight`` × mean over all pixels of mask × (image − warped previous result)², at the image's size."""

    def __init__(self, warped: np.ndarray, mask: np.ndarray, weight: float, luminance: bool) -> None:
        self.weight, self.luminance = weight, luminance
        self.warped = torch.from_numpy(warped).permute(2, 0, 1).unsqueeze(0).float().div_(255)
        self.mask = torch.from_numpy(mask)[None, None]
        self._placed: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        target, mask = self._at(image)
        return self.weight * (mask * (image - target).pow(2)).mean()

    def _at(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target and mask on the image's device, at its size (the optimised picture is grey in luminance
        mode, so the target is too); made once per frame."""
        if self._placed is None or self._placed[0].shape[-2:] != image.shape[-2:]:
            size = tuple(image.shape[-2:])
            target = torch.nn.functional.interpolate(self.warped, size=size, mode="bilinear", align_corners=False)
            mask = torch.nn.functional.interpolate(self.mask, size=size, mode="nearest")
            target = color.luminance(target) if self.luminance else target
            self._placed = target.to(image.device), mask.to(image.device)
        return self._placed


class _Timeline:
    """Turns one frame's progress into the animation's: iterations counted over all frames, the ETA from the
    work done so far (frames weighed by their ``StylizeOptions.cost``)."""

    def __init__(self, iterations: Sequence[int], work: Sequence[float], on_progress: ProgressCallback | None):
        self.iterations, self.work, self.on_progress = list(iterations), list(work), on_progress
        self.total = sum(self.iterations)
        self.started = time.perf_counter()
        self.frame = 0

    def report(self, progress: Progress) -> None:
        if self.on_progress is None:
            return
        elapsed = time.perf_counter() - self.started
        within = progress.iteration / progress.total if progress.total else 1.0
        done = sum(self.work[:self.frame]) + self.work[self.frame] * within
        eta = elapsed * (sum(self.work) - done) / done if done else None
        self.on_progress(dataclasses.replace(
            progress, iteration=sum(self.iterations[:self.frame]) + progress.iteration, total=self.total,
            elapsed=elapsed, eta=eta, frame=self.frame + 1, frames=len(self.iterations)))


def stylize_animation(engine: Engine, animation: Animation, styles: Sequence[ImageSource],
                      options: StylizeOptions, *, on_progress: ProgressCallback | None,
                      should_stop: StopCheck) -> AnimationResult:
    """Stylise ``animation``'s frames in order (see the module docstring); a stop ends the run within one
    iteration, keeping the frames finished before it."""
    count = animation.frame_count
    coherent = options.temporal_weight > 0 and count > 1
    later = later_frame_options(options) if coherent else options
    frame_options = [options] + [later] * (count - 1)
    timeline = _Timeline([o.iterations for o in frame_options], [o.cost(animation.size) for o in frame_options],
                         on_progress)
    out_size = scaled_size(*animation.size, options.size)
    shared: dict = {}
    results: list[Image.Image] = []
    losses: list[dict[str, float]] = []
    times: list[float] = []
    iterations, cancelled, device = 0, False, "cpu"
    previous_input: np.ndarray | None = None
    for index, frame in enumerate(animation.frames):
        timeline.frame = index
        sized = frame.resize(out_size, Image.Resampling.LANCZOS) if coherent else None
        current_input = grey(sized) if sized is not None else None
        request = BatchRequest(frame, styles, frame_options[index], shared_targets=shared)
        if coherent and index:
            request = _coherent_request(request, frame_motion(previous_input, current_input), results[-1], sized)
        if should_stop():
            cancelled = True
            break
        result = engine.stylize_batch([request], on_progress=lambda _, p: timeline.report(p),
                                      should_stop=lambda _: should_stop())[0]
        if result.error:
            raise NSTError(result.error)
        iterations += result.iterations
        device = result.device
        if result.cancelled:
            cancelled = True
            break
        results.append(result.image)
        losses.append(result.losses)
        times.append(result.elapsed)
        previous_input = current_input
    kept = Animation(tuple(results), animation.durations_ms[:len(results)], animation.loop) if results else None
    return AnimationResult(kept, tuple(losses), iterations, cancelled, time.perf_counter() - timeline.started,
                           device, tuple(times))


def _coherent_request(request: BatchRequest, motion: Motion, previous_result: Image.Image,
                      content: Image.Image) -> BatchRequest:
    """A later frame's job: it starts from the previous result warped along ``motion`` where the motion is
    trusted, and keeps to it there; elsewhere it starts from its own ``content`` (at the output size), as a still
    job does. Starting from the warped result there too would carry the previous picture into the places the
    flow got wrong: a moving object the flow missed would stay where it was."""
    warped = motion.warp(np.asarray(previous_result))
    trusted = motion.mask[..., None]
    start = trusted * warped + (1 - trusted) * np.asarray(content, np.float32)
    loss = TemporalLoss(warped, motion.mask, request.options.temporal_weight,
                        request.options.preserve_colors == "luminance")
    return dataclasses.replace(request, init_image=Image.fromarray(start.round().astype(np.uint8), "RGB"),
                               temporal_loss=loss)
