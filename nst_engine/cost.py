"""What a job will cost before it runs: predicted peak memory and work, from the sizes that decide them.

Torch-free (like :mod:`.options`), so the bot's job core can admit, batch, route and time jobs with the same
numbers the engine runs by. The engine's memory at any moment is its process (runtime and network,
``FIXED_MB``) plus the larger of two phases at each coarse-to-fine scale:

- the optimisation: activations kept for the backward pass, per framed pixel of the picture (the mirrored
  frame of ``network.frame_for`` included), times the batch, plus L-BFGS's history (two flat copies of the
  image per remembered step, at most ``LBFGS_HISTORY`` steps, and one slot more: nst_engine/lbfgs.py);
- the targets: one style image at a time through the network without gradients, per framed style pixel,
  while the previous scale's optimiser state is still held.

The CPU constants are fitted by ``benchmarks/cost_model.py`` (peak RSS of a fresh process per job); the GPU
ones are an estimate from the CPU fit (see docs/engine.md). Style images are bounded by :func:`style_size`, so
``style_scale`` cannot multiply memory: each is at most ``STYLE_PIXEL_RATIO`` times the picture's pixels.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .images import scaled_size
from .layers import frame_for
from .options import StylizeOptions

MB = 1024 * 1024
# Fitted on the CPU (fp32) by benchmarks/cost_model.py; benchmarks/out/cost-model-cpu.json has the fit.
FIXED_MB = 895.0  # the engine process as a whole: Python, torch, the network's weights
OPTIMISE_BYTES_PER_PIXEL = 2360.0  # forward + backward of one framed picture pixel, fp32
TARGET_BYTES_PER_PIXEL = 880.0  # a style image's forward pass without gradients, per framed pixel, fp32
# On a GPU, bf16/fp16 autocast keeps the network's activations in half precision (the Grams and losses stay
# fp32): an estimate. On the CPU bf16 saved nothing (measured at 256 px on an AVX2 EPYC: 1003 MB vs 963 MB fp32),
# so a CPU job counts as fp32 whatever its precision.
HALF_PRECISION_SHARE = 0.6
# On a GPU the process's own memory (the CUDA context) is not device memory; the network's weights are.
GPU_FIXED_MB = 600.0
LBFGS_HISTORY = 50  # the engine's history_size
IMAGE_BYTES_PER_PIXEL = 3 * 4  # one RGB fp32 picture
# A style image has at most this many times the picture's pixels at each scale. Measured: a style's forward
# pass per pixel costs about half what the optimisation does per picture pixel, so at 2 times a large
# style_scale adds about nothing to the peak (at 4 times it added 1.33x at 512 px, more at larger sizes).
STYLE_PIXEL_RATIO = 2.0
MIN_STYLE_SIDE = 16  # also the smallest output size a refusal suggests
SCAN_STEPS = 16  # how finely largest_size_within scans at each pass
# One forward pass without gradients costs about half an optimisation step (forward + input gradient).
FORWARD_SHARE = 0.5
# What the default memory budget leaves of the machine (or its container's limit) for the bot's own process
# and its image decoders beside the engine; the budget is never below MIN_BUDGET_MB.
RESERVED_MB = 400
MIN_BUDGET_MB = 512
MEMINFO = Path("/proc/meminfo")
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


@dataclass(frozen=True)
class JobCost:
    """A job's predicted peak memory (MB, when it runs alone) and work (framed pixels × passes: the ETA's
    unit). ``fixed_mb`` is the part every job of a batch shares: the engine process itself."""

    peak_mb: float
    fixed_mb: float
    work: float

    @property
    def job_mb(self) -> float:
        """What this job adds to the engine's memory; a batch adds each of its jobs' (see :func:`batch_peak_mb`)."""
        return self.peak_mb - self.fixed_mb


def style_size(style: tuple[int, int], picture: tuple[int, int], style_scale: float) -> tuple[int, int]:
    """(width, height) a style image is used at for a picture of this size: its long side ``style_scale``
    times the picture's, shrunk to at most ``STYLE_PIXEL_RATIO`` times the picture's pixels."""
    long_side = max(MIN_STYLE_SIDE, round(max(picture) * style_scale))
    width, height = scaled_size(*style, long_side)
    most = STYLE_PIXEL_RATIO * picture[0] * picture[1]
    if width * height > most:
        long_side = max(MIN_STYLE_SIDE, math.floor(long_side * math.sqrt(most / (width * height))))
        width, height = scaled_size(*style, long_side)
    return width, height


@dataclass(frozen=True)
class ScaleTerms:
    """What one coarse-to-fine scale of a job holds: framed pixels of the picture and of its largest style
    image (and of all its styles, for the work), the optimiser's state in bytes (``held`` is the previous
    scale's, alive while this scale's targets are made) and the scale's iterations."""

    picture: int
    largest_style: int
    all_styles: int
    state_bytes: float
    held_bytes: float
    iterations: int


def scale_terms(options: StylizeOptions, content_size: tuple[int, int],
                style_sizes: Sequence[tuple[int, int]]) -> list[ScaleTerms]:
    """The terms the model weighs at each scale of ``options.schedule()`` (see :func:`job_cost`)."""
    output = scaled_size(*content_size, options.size)
    terms, held = [], 0.0
    for scale in options.schedule():
        picture = scaled_size(*output, scale.long_side)
        frame = frame_for(picture)
        styles = [_framed(style_size(style, picture, options.style_scale), frame) for style in style_sizes]
        # The history's slots (the pairs remembered, at least one, and a free one), + image, best, direction, gradient.
        history = 2 * (min(max(scale.iterations - 1, 1), LBFGS_HISTORY) + 1) + 4
        state = history * IMAGE_BYTES_PER_PIXEL * picture[0] * picture[1]
        terms.append(ScaleTerms(_framed(picture, frame), max(styles, default=0), sum(styles), state, held,
                                scale.iterations))
        held = state
    return terms


def job_cost(options: StylizeOptions, content_size: tuple[int, int], style_sizes: Sequence[tuple[int, int]],
             *, device: str = "cpu") -> JobCost:
    """The cost of one job: ``content_size`` the upright content's (width, height), ``style_sizes`` each style
    image's as stored (before :func:`style_size`), ``device`` "cpu" or "cuda" (``options.device`` when it
    names one). On a CPU every precision counts as fp32 (bf16 saved no memory there, measured)."""
    device = options.device if options.device != "auto" else device
    gpu = device == "cuda"
    share = HALF_PRECISION_SHARE if gpu and options.precision != "fp32" else 1.0
    peak, work = 0.0, 0.0
    for term in scale_terms(options, content_size, style_sizes):
        optimise = share * OPTIMISE_BYTES_PER_PIXEL * term.picture + term.state_bytes
        targets = share * TARGET_BYTES_PER_PIXEL * term.largest_style + term.held_bytes
        peak = max(peak, optimise, targets)
        work += term.iterations * term.picture + FORWARD_SHARE * (term.picture + term.all_styles)
    fixed = GPU_FIXED_MB if gpu else FIXED_MB
    return JobCost(fixed + peak / MB, fixed, work)


def worst_case_cost(options: StylizeOptions, style_count: int, *, device: str = "cpu") -> JobCost:
    """The most a job with these options can cost whatever its images: a square content (the most pixels for
    a long side) and styles as large as :func:`style_size` lets them be. For admission before any download."""
    square = (options.size, options.size)
    return job_cost(options, square, [square] * style_count, device=device)


def batch_peak_mb(costs: Sequence[JobCost]) -> float:
    """Predicted peak of jobs run as one batch: the engine once, every job's own share (an upper bound: each job
    fetches its style targets alone, but its share counts the larger phase)."""
    if not costs:
        return 0.0
    return max(cost.fixed_mb for cost in costs) + sum(cost.job_mb for cost in costs)


def largest_size_within(options: StylizeOptions, style_count: int, budget_mb: float, *,
                        device: str = "cpu") -> int | None:
    """A large output size (long side, up to ``options.size``) at which :func:`worst_case_cost` fits
    ``budget_mb``, None when not even the smallest does: what a refusal suggests. Scanned down in ever finer
    steps, not bisected: a smaller size can cost more where it drops a coarse scale (its finest scale then
    gets more iterations); a few dozen predictions, so a refusal stays cheap for the bot."""
    def fits(size: int) -> bool:
        return worst_case_cost(dataclasses.replace(options, size=size), style_count, device=device).peak_mb <= budget_mb

    high, step = options.size, max(1, (options.size - MIN_STYLE_SIDE) // SCAN_STEPS)
    while True:
        size = high
        while size > MIN_STYLE_SIDE and not fits(size):
            size -= step
        if size <= MIN_STYLE_SIDE:  # the smallest, then refined upwards like any other find
            if not fits(MIN_STYLE_SIDE):
                return None
            size = MIN_STYLE_SIDE
        if step == 1:
            return size
        high, step = min(options.size, size + step - 1), max(1, step // SCAN_STEPS)


def over_budget(options: StylizeOptions, style_count: int, peak_mb: float, budget_mb: float, *,
                device: str = "cpu") -> str | None:
    """Why a job with these options and predicted ``peak_mb`` cannot run within ``budget_mb``, in words that
    say what to lower (the largest size that fits whatever the images); None when it fits."""
    if peak_mb <= budget_mb:
        return None
    needs = (f"This request could need about {peak_mb / 1024:.1f} GB of memory, more than the image engine may "
             f"use ({budget_mb / 1024:.1f} GB).")
    fits = largest_size_within(options, style_count, budget_mb, device=device)
    if fits is None:
        return f"{needs} Not even the smallest job fits; the bot's admins can raise `[engine] max_job_memory_mb`."
    lower = [f"the size (up to {fits} px fits with the rest as asked)", "the quality (fewer iterations)"]
    if options.style_scale > 1:
        lower.append("the style scale")
    return f"{needs} Lower {', '.join(lower[:-1])} or {lower[-1]}, and try again."


def _framed(size: tuple[int, int], frame: int) -> int:
    return (size[0] + 2 * frame) * (size[1] + 2 * frame)


def machine_memory_mb() -> float | None:
    """This machine's memory, or its container's limit when that is lower (cgroup v2 or v1); None if unknown."""
    found = []
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                found.append(int(line.split()[1]) / 1024)
    except OSError:
        pass
    for limit in CGROUP_LIMITS:
        try:
            found.append(int(limit.read_text().strip()) / MB)
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
    return min(found, default=None)


def default_budget_mb() -> int:
    """The memory an engine here may use when the config does not say: the machine's (or container's) less
    ``RESERVED_MB``; under docker-compose.yml's 3 GB limit that is 2672 MB, enough for the high level."""
    machine = machine_memory_mb()
    return MIN_BUDGET_MB if machine is None else max(MIN_BUDGET_MB, int(machine - RESERVED_MB))


# A later frame of an animation starts from the previous stylised frame warped along the motion, so it runs
# only at the output size and needs a share of the first frame's iterations (measured in
# benchmarks/animation.py; docs/engine.md gives the figures), at least ``MIN_LATER_ITERATIONS``.
LATER_FRAME_SHARE = 0.25
MIN_LATER_ITERATIONS = 4
# What an animation holds beyond one frame's job, per output pixel: the flows both ways (2 × 2 float32), the
# warped previous result and its mask (4 float32) and the temporal term's tensors (4 float32); and per input
# frame pixel, every frame in and out as 8-bit RGB.
FLOW_BYTES_PER_PIXEL = (4 + 4 + 4) * 4
FRAME_BYTES_PER_PIXEL = 2 * 3


def later_frame_iterations(options: StylizeOptions) -> int:
    """Iterations of each frame after the first when the animation is temporally coherent."""
    return min(options.iterations, max(MIN_LATER_ITERATIONS, round(LATER_FRAME_SHARE * options.iterations)))


def animation_iterations(options: StylizeOptions, frame_count: int) -> int:
    """All the iterations of an animation of ``frame_count`` frames: the total its progress counts to."""
    later = later_frame_iterations(options) if options.temporal_weight > 0 else options.iterations
    return options.iterations + max(0, frame_count - 1) * later


def later_frame_options(options: StylizeOptions) -> StylizeOptions:
    """The options a later frame runs with: one scale at the output size, its share of the iterations, and no
    seed jitter (its start is the warped previous frame, which the seed already shaped)."""
    return dataclasses.replace(options, min_scale=options.size, iterations=later_frame_iterations(options),
                               seed=0)


def animation_cost(options: StylizeOptions, content_size: tuple[int, int], frame_count: int,
                   style_sizes: Sequence[tuple[int, int]], *, device: str = "cpu") -> JobCost:
    """The cost of stylising ``frame_count`` frames of ``content_size``: the first frame's job, then each later
    frame's (fewer iterations at the output size when ``options.temporal_weight`` is set, a whole job each
    otherwise; the style targets are made once either way); the peak is the larger frame job plus the frames
    held and the flow's buffers."""
    first = job_cost(options, content_size, style_sizes, device=device)
    if frame_count <= 1:
        return first
    temporal = options.temporal_weight > 0
    later_options = later_frame_options(options) if temporal else options
    later = job_cost(later_options, content_size, style_sizes, device=device)
    style_passes = sum(term.all_styles for term in scale_terms(later_options, content_size, style_sizes))
    later_work = later.work - FORWARD_SHARE * style_passes
    width, height = scaled_size(*content_size, options.size)
    held = FRAME_BYTES_PER_PIXEL * frame_count * (content_size[0] * content_size[1] + width * height)
    overhead = (held + (FLOW_BYTES_PER_PIXEL * width * height if temporal else 0)) / MB
    return JobCost(max(first.peak_mb, later.peak_mb) + overhead, first.fixed_mb,
                   first.work + (frame_count - 1) * later_work)
