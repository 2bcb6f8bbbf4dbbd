"""The optimisation: coarse-to-fine Gatys style transfer with progress, previews, cancellation and batching.

Speed choices, each measured in ``benchmarks/engine.py`` (figures in benchmarks/README.md):
- VGG19 truncated after the deepest layer a request uses, channels_last layout, in-place ReLUs;
- autocast to bf16 on CPUs with native bf16 instructions and on CUDA (fp16 on GPUs without bf16); the Gram
  matrices and losses stay in fp32, outside autocast;
- several jobs of one output size and optimiser share each forward/backward pass, while every image keeps its
  own optimiser state, so a job follows the same path in a batch as alone; the optimiser steps the whole batch at
  once (nst_engine/lbfgs.py, nst_engine/adam.py), and the best image, the overshoot restart and the divergence
  check are decided on the device too, so an iteration is a fixed set of tensor operations that reads nothing
  back until it has been enqueued whole, which a CUDA graph can capture (nst_engine/graphs.py);
- one host transfer per iteration (all losses of the batch at once); previews only every ``preview_every``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from . import color, heap
from .adam import BatchedAdam
from .cost import LBFGS_HISTORY, style_size
from .errors import NSTError, OptionError
from .graphs import Capturing, CudaIterationGraph, IterationGraph
from .images import ImageSource, load_image, resize_long_side, scaled_size
from .layers import LAYER_INDEX
from .lbfgs import BatchedLBFGS
from .losses import content_loss, edge_loss, edge_profile, gram, style_loss, tv_loss
from .network import VGGEncoder, frame_for
from .options import Scale, StylizeOptions
from .weights import load_weights

# fp16 gradients of a loss near 1 underflow in the first VGG layers; a fixed scale keeps them representable.
FP16_LOSS_SCALE = 1024.0
LOSS_NAMES = ("content", "style", "tv", "total")
# L-BFGS without line search (one evaluation per iteration) sometimes overshoots, most of all where clamping
# to 0..1 bends its curvature estimate; a loss this many times the best so far sends the job back to its best
# image with a fresh memory (measured: without it, 40 iterations at 128 px could end at 5× the best loss).
LBFGS_RESTART_JUMP = 1.3
# Largest root-mean-square pixel change (pixels in 0..1) of one L-BFGS step: a trust region that keeps the
# full steps taken without line search from overshooting on this quartic objective. The step length recorded
# in L-BFGS's state is scaled with it, so its curvature pairs stay consistent with the step taken. Measured on
# 64-128 px jobs: unclamped L-BFGS stylises less in few iterations, clamped without the trust region overshoots.
LBFGS_MAX_STEP_RMS = 0.1
# A nonzero seed adds uniform noise of this amplitude (pixels in 0..1) to the content start at the coarsest
# scale: enough for the style's texture to settle differently on a re-roll, small enough that the content and
# the loss reached stay as good (seed 0 starts from the content itself). Measured in benchmarks/quality.py.
SEED_JITTER = 0.15
# Colour preservation matches the style's colour statistics to the content's, so the content starts close to
# the style's Gram matrices and the style term barely pulls: the texture hardly showed. Such jobs weigh the
# style by how much farther from the style the content starts without preservation (summed over the style
# layers), at most this much.
COLOUR_STYLE_GAIN_MAX = 25.0
# The band along the border (issue 23): the style's darkest colour settles where the picture's darkest part meets
# an edge (the landscape's sky at the top), so the outer rows of a side end up darker or lighter than the rows
# inside, seed after seed. The frame, turn-symmetric objectives and other paddings did not remove it
# (docs/quality.md, section 6); a loss that holds each side's EDGE_DEPTH outer rows, by their mean along the side,
# to the content's profile against the rows inside does (losses.edge_loss), past EDGE_TOLERANCE (pixels in 0..1).
# Weighed by EDGE_WEIGHT at the default style weight and strength 1, and in proportion to the job's style weight
# (with strength and colour gain) otherwise, since a stronger style pulls harder towards the band. At 128-512 px
# it brought every side of every preset within 0.025 of the content's own jump, with the style loss reached no
# higher on average (benchmarks/quality.py --only border). 0: off.
EDGE_WEIGHT = 50.0
EDGE_DEPTH = 16
EDGE_TOLERANCE = 0.01
DEFAULT_STYLE_WEIGHT = StylizeOptions().style_weight


@dataclass(frozen=True)
class Progress:
    """Reported after every iteration. ``iteration`` counts from 1 over all scales (and, for an animation, all
    frames) up to ``total``; ``frame`` is the frame being stylised, 1 of 1 for a still picture."""

    iteration: int
    total: int
    scale_index: int
    scale_count: int
    width: int
    height: int
    losses: Mapping[str, float]
    elapsed: float
    eta: float | None
    preview: Image.Image | None = None
    frame: int = 1
    frames: int = 1

    @property
    def fraction(self) -> float:
        return self.iteration / self.total if self.total else 1.0


@dataclass
class StylizeResult:
    """``error`` is set (and ``image`` is the last good state) when a job in a batch diverged."""

    image: Image.Image
    iterations: int
    cancelled: bool
    elapsed: float
    losses: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    error: str | None = None
    batch_size: int = 1


@dataclass(frozen=True)
class BatchRequest:
    """One job for :meth:`Engine.stylize_batch`: the same inputs :meth:`Engine.stylize` takes.

    Two hooks serve animations (nst_engine/temporal.py): ``temporal_loss`` maps the image being optimised to a
    loss added to the job's objective, and ``shared_targets`` is a dict in which jobs with the same styles and
    options keep their style targets (and colour gain), so a sequence of frames computes them once."""

    content: ImageSource
    styles: Sequence[ImageSource]
    options: StylizeOptions = field(default_factory=StylizeOptions)
    init_image: ImageSource | None = None
    temporal_loss: Callable[[torch.Tensor], torch.Tensor] | None = None
    shared_targets: dict | None = None


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]
BatchProgressCallback = Callable[[int, Progress], None]
BatchStopCheck = Callable[[int], bool]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX-512 BF16 or AMX that oneDNN may use: there bf16 convolutions run ~2× faster than
    fp32.

    Elsewhere (AVX2-only CPUs, e.g. many cloud VMs, or oneDNN held below AVX-512 by ``ONEDNN_MAX_CPU_ISA``) bf16 is
    emulated and ~10× slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text() if sys.platform.startswith("linux") else ""
    except OSError:
        return False
    return (any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _stop_check(should_stop: StopCheck | object | None) -> StopCheck:
    if should_stop is None:
        return lambda: False
    if hasattr(should_stop, "is_set"):
        return should_stop.is_set  # threading.Event / multiprocessing.Event
    if callable(should_stop):
        return should_stop
    raise TypeError("should_stop must be a callable or an object with is_set()")


def to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, 3).permute(2, 0, 1).unsqueeze(0).to(device).float().div_(255).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().contiguous().numpy()
    return Image.fromarray(array, "RGB")


class Engine:
    """A loaded VGG19, reusable across many stylize calls (the engine process keeps one)."""

    def __init__(self, weights: str | None = None, *, configured: str | None = None,
                 channels_last: bool = True, packed_weights: bool = True, cuda_graphs: bool = False) -> None:
        """``weights`` is an explicit file; ``configured`` the config's, used after ``$NST_WEIGHTS``.

        ``channels_last=False`` keeps the NCHW layout, ``packed_weights=False`` lets oneDNN reorder the CPU
        convolutions' weights on every call (only the benchmarks' comparisons want either). ``cuda_graphs``
        replays each scale's iteration from a CUDA graph on a GPU (nst_engine/graphs.py; off until measured),
        until a capture fails: then every iteration runs eagerly.
        """
        self.packed_weights, self.cuda_graphs = packed_weights, cuda_graphs
        self.capturing = Capturing(CudaIterationGraph)
        self._convs = load_weights(weights, configured)
        self._encoders: dict[tuple[str, str, str], VGGEncoder] = {}
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def encoder(self, device: torch.device, pooling: str, last_layer: str) -> VGGEncoder:
        key = (str(device), pooling, last_layer)
        if key not in self._encoders:
            # cuDNN's autotuner (torch.backends.cudnn.benchmark) stays off: every upload's aspect ratio is new
            # shapes to tune, which cost 1-4 s per job on an H200 and saved nothing per iteration
            # (benchmarks/gpu.py, benchmarks/README.md).
            encoder = VGGEncoder(self._convs, last_layer, pooling)
            encoder = encoder.to(device, memory_format=self.memory_format)
            if device.type == "cpu" and self.packed_weights:
                encoder.pack_weights()
            self._encoders[key] = encoder
        return self._encoders[key]

    def iteration_graphs(self, device: torch.device) -> Callable[[], IterationGraph | None] | None:
        """What captures a batch's iterations on ``device``, if anything does."""
        if self.cuda_graphs and device.type == self.capturing.kind.device_type and not self.capturing.failed:
            return self.capturing.new_graph
        return None

    def stylize(self, content: ImageSource, styles: Sequence[ImageSource], options: StylizeOptions | None = None,
                *, on_progress: ProgressCallback | None = None, should_stop: StopCheck | object | None = None,
                init_image: ImageSource | None = None) -> StylizeResult:
        """Stylise ``content`` with the blended ``styles``; see :class:`StylizeOptions` for the knobs.

        ``init_image`` (say, an earlier, smaller result) is where the optimisation starts at the first scale,
        instead of the content: an upscale refines that picture rather than starting over. The content still
        sets the output's shape and the content loss."""
        stop = _stop_check(should_stop)
        report = (lambda _, progress: on_progress(progress)) if on_progress else None
        result = self.stylize_batch([BatchRequest(content, styles, options or StylizeOptions(), init_image)],
                                    on_progress=report, should_stop=lambda _: stop())[0]
        if result.error:
            raise NSTError(result.error)
        return result

    def stylize_animation(self, animation, styles: Sequence[ImageSource], options: StylizeOptions | None = None,
                          *, on_progress: ProgressCallback | None = None,
                          should_stop: StopCheck | object | None = None):
        """Stylise every frame of an :class:`~nst_engine.animation.Animation` coherently; returns an
        :class:`~nst_engine.animation.AnimationResult` (see nst_engine/temporal.py for how)."""
        from .temporal import stylize_animation

        with heap.kept():
            return stylize_animation(self, animation, styles, options or StylizeOptions(), on_progress=on_progress,
                                     should_stop=_stop_check(should_stop))

    def stylize_batch(self, requests: Sequence[BatchRequest], *, on_progress: BatchProgressCallback | None = None,
                      should_stop: BatchStopCheck | None = None) -> list[StylizeResult]:
        """Stylise several jobs, optimising those with equal :meth:`StylizeOptions.batch_key` and optimiser
        together (one forward/backward pass per iteration for the group). Callbacks get the job's index in
        ``requests``; a job whose ``should_stop(index)`` turns true stops within one iteration while the others go
        on. A job that diverges gets ``error`` set instead of failing its batch. Results come back in request
        order.
        """
        jobs = [_Job(index, request) for index, request in enumerate(requests)]
        groups: dict[tuple, list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.options.batch_key(job.content.size), job.options.optimizer), []).append(job)
        results: dict[int, StylizeResult] = {}
        with heap.kept():  # the iterations' feature maps reuse freed memory (nst_engine/heap.py)
            for group in groups.values():
                results.update(_Batch(self, group, on_progress, should_stop).run())
        return [results[job.index] for job in jobs]


class _Job:
    """One request inside a batch: its inputs, targets, losses and best image (its row of the batch's _Rows)."""

    def __init__(self, index: int, request: BatchRequest) -> None:
        self.index, self.options = index, request.options
        if not request.styles:
            raise OptionError("at least one style image is needed")
        self.blend = self.options.normalized_style_weights(len(request.styles))
        self.content = load_image(request.content, what="content image")
        self.styles = [load_image(style, what="style image") for style in request.styles]
        self.init_image = (load_image(request.init_image, what="starting image")
                           if request.init_image is not None else None)
        self.temporal_loss, self.shared_targets = request.temporal_loss, request.shared_targets
        options = self.options
        layer_weights = options.style_layer_weights or (1.0,) * len(options.style_layers)
        style_scale = options.style_weight * options.strength / sum(layer_weights)
        # Loss weights per style layer, then content and tv: the coefficients of this job's objective.
        self.style_weights = [style_scale * w for w in layer_weights]
        self.layer_weights = layer_weights
        self.iteration = 0
        self.losses: dict[str, float] = {}
        self.cancelled = False
        self.error: str | None = None
        self.elapsed = 0.0
        self.best_image: torch.Tensor
        self.content_target: torch.Tensor
        self.style_targets: dict[str, torch.Tensor]
        self.edge_target: torch.Tensor

    @property
    def running(self) -> bool:
        return not (self.cancelled or self.error)

    def prepared_inputs(self, size: tuple[int, int], device: torch.device,
                        preserve: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Content at exactly ``size`` and styles at their scale, with colour preservation applied if
        ``preserve``."""
        content = to_tensor(self.content.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), device)
        styles = [to_tensor(_resized(style, style_size(style.size, size, self.options.style_scale)), device)
                  for style in self.styles]
        mode = self.options.preserve_colors if preserve else "none"
        if mode == "luminance":
            styles = [color.match_luminance(style, content) for style in styles]
            content = color.luminance(content)
        elif mode == "histogram":
            styles = [color.match_histogram(style, content) for style in styles]
        return content, styles

    def start_image(self, content: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """Where this scale starts: from the previous scale's result, else from the init image when the job has
        one, else as ``options.init`` says (a seed jitters the start)."""
        options = self.options
        if previous is not None:
            start = F.interpolate(previous.clamp(0, 1), size=content.shape[-2:], mode="bicubic",
                                  align_corners=False)
        elif options.init == "noise" and self.init_image is None:
            start = torch.rand(content.shape, generator=self._generator()).to(content.device)
        else:
            base = content if self.init_image is None else self._init_tensor(content)
            if options.seed:
                jitter = torch.rand(content.shape, generator=self._generator()).mul_(2).sub_(1).mul_(SEED_JITTER)
                base = base + jitter.to(content.device)
            start = base
        return start.detach().clamp(0, 1).contiguous()

    def _init_tensor(self, content: torch.Tensor) -> torch.Tensor:
        """The init image at the content's size (grey too when the job optimises luminance only)."""
        height, width = content.shape[-2:]
        image = to_tensor(self.init_image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0),
                          content.device)
        return color.luminance(image) if self.options.preserve_colors == "luminance" else image

    def _generator(self) -> torch.Generator:
        """A CPU generator seeded with the job's seed, so a seed gives the same start on every device."""
        return torch.Generator().manual_seed(self.options.seed)

    def shared(self, key: tuple, make: Callable[[], object]) -> object:
        """``make()``, kept in the request's ``shared_targets`` under ``key`` when it has them."""
        if self.shared_targets is None:
            return make()
        if key not in self.shared_targets:
            self.shared_targets[key] = make()
        return self.shared_targets[key]

    def finish(self, image: torch.Tensor, out_size: tuple[int, int]) -> Image.Image:
        """``image`` at the output size, with the content's chroma in luminance mode."""
        width, height = out_size
        if tuple(image.shape[-2:]) != (height, width):
            image = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False)
        if self.options.preserve_colors == "luminance":
            content = to_tensor(self.content.resize((width, height), Image.Resampling.LANCZOS), image.device)
            image = color.combine_luminance(image, content)
        return to_image(image)


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


class _Batch:
    """Jobs with one :meth:`StylizeOptions.batch_key`, optimised together scale by scale."""

    def __init__(self, engine: Engine, jobs: list[_Job], on_progress: BatchProgressCallback | None,
                 should_stop: BatchStopCheck | None) -> None:
        options = jobs[0].options
        self.jobs, self.on_progress, self.should_stop = jobs, on_progress, should_stop
        self.device = resolve_device(options.device)
        self.dtype = resolve_precision(options.precision, self.device)
        self.loss_scale = FP16_LOSS_SCALE if self.dtype == torch.float16 else 1.0
        self.content_layer, self.style_layers = options.content_layer, tuple(options.style_layers)
        last_layer = max((self.content_layer, *self.style_layers), key=LAYER_INDEX.__getitem__)
        self.encoder = engine.encoder(self.device, options.pooling, last_layer)
        self.memory_format = engine.memory_format
        self.graphs = engine.iteration_graphs(self.device)
        self.frame = 0  # the mirrored frame of the current scale (network.frame_for), set by _start_scale
        self.total = options.iterations
        self.schedule = options.schedule()
        self.out_size = scaled_size(*jobs[0].content.size, options.size)
        # The ETA weighs each iteration by its pixels: coarse iterations are cheap, so a count-based ETA made
        # early estimates far too short.
        self.work_total = options.cost(jobs[0].content.size)
        self.work_done = 0.0

    def _pixels(self, long_side: int) -> int:
        width, height = scaled_size(*self.out_size, long_side)
        return width * height

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        # A graph replays its casts; autocast's cache would make the weights' casts once, outside the graph.
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=self.graphs is None)

    def _features(self, image: torch.Tensor, layers: Sequence[str], framed: bool = False) -> dict:
        with self._autocast():
            return self.encoder(image.contiguous(memory_format=self.memory_format), layers, self.frame, framed)

    def run(self) -> Iterator[tuple[int, StylizeResult]]:
        self.started = time.perf_counter()
        for index, scale in enumerate(self.schedule):
            active = [job for job in self.jobs if job.running]
            if not active:
                break
            self._start_scale(active, scale)
            for _ in range(scale.iterations):
                active = [job for job in active if job.running and not self._stopped(job)]
                if not active:
                    break
                self._iterate(active)
                self.work_done += self._pixels(scale.long_side)
                for job in active:
                    self._report(job, index)
        finished = time.perf_counter() - self.started
        for job in self.jobs:
            if job.running:
                job.elapsed = finished
            yield job.index, StylizeResult(job.finish(job.best_image, self.out_size), job.iteration,
                                           job.cancelled, job.elapsed, dict(job.losses), str(self.device),
                                           job.error, len(self.jobs))

    def _stopped(self, job: _Job) -> bool:
        if self.should_stop is not None and self.should_stop(job.index):
            job.cancelled = True
            job.elapsed = time.perf_counter() - self.started
        return job.cancelled

    @torch.no_grad()
    def _start_scale(self, jobs: list[_Job], scale: Scale) -> None:
        """Targets (content features, blended style Grams), starting images and optimiser state for each job at
        this scale."""
        size = scaled_size(*self.out_size, scale.long_side)
        self.frame = frame_for(size)  # the picture's, for its style images too
        starts = []
        for job in jobs:
            content, styles = job.prepared_inputs(size, self.device)
            job.content_target = self._features(content, [self.content_layer])[self.content_layer]
            job.edge_target = edge_profile(content, min(EDGE_DEPTH, min(size) // 4))
            job.style_targets = job.shared(("style", size), lambda: self._style_grams(job, styles))
            if not job.iteration and job.options.preserve_colors != "none":
                gain = job.shared(("colour gain",), lambda: self._colour_gain(job, size, content))
                job.style_weights = [weight * gain for weight in job.style_weights]
            starts.append(job.start_image(content, job.best_image if job.iteration else None))
        self._stacked_for: tuple[int, ...] = ()
        history = min(LBFGS_HISTORY, scale.iterations - 1)  # one pair per step after the first
        self.rows = _Rows(jobs, starts, history, self.graphs)

    def _style_grams(self, job: _Job, styles: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The job's style targets: the Gram matrices of its styles, blended with its weights."""
        grams: dict[str, torch.Tensor] = {}
        for weight, style in zip(job.blend, styles):
            features = self._features(style, self.style_layers)
            for name in self.style_layers:
                grams[name] = grams.get(name, 0) + weight * gram(features[name])
        return grams

    def _colour_gain(self, job: _Job, size: tuple[int, int], content: torch.Tensor) -> float:
        """How many times farther from the style the content starts without colour preservation than with it
        (see ``COLOUR_STYLE_GAIN_MAX``); ``content`` is the preserved start, its targets already set."""
        def distance(image: torch.Tensor, targets: dict[str, torch.Tensor]) -> float:
            features = self._features(image, self.style_layers)
            return sum(weight * float(style_loss(gram(features[name]), targets[name]).sum())
                       for weight, name in zip(job.layer_weights, self.style_layers))

        plain_content, plain_styles = job.prepared_inputs(size, self.device, preserve=False)
        plain = distance(plain_content, self._style_grams(job, plain_styles))
        kept = distance(content, job.style_targets)
        return min(max(plain / max(kept, 1e-12), 1.0), COLOUR_STYLE_GAIN_MAX)

    def _stacked_targets(self, jobs: list[_Job]) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor,
                                                           torch.Tensor]:
        """Targets (content, style, edge profile) and loss weights of ``jobs`` stacked along the batch; rebuilt
        only when the batch changes.

        The weights are rows of per-layer style weights (with strength), then content, tv and edge, then the bare
        per-layer weights that the reported style loss uses.
        """
        members = tuple(job.index for job in jobs)
        if members != self._stacked_for:
            self._stacked_for = members
            content = torch.cat([job.content_target for job in jobs])
            styles = {name: torch.cat([job.style_targets[name] for job in jobs]) for name in self.style_layers}
            edges = torch.cat([job.edge_target for job in jobs])
            weights = torch.tensor([[*job.style_weights, job.options.content_weight, job.options.tv_weight,
                                     EDGE_WEIGHT * sum(job.style_weights) / DEFAULT_STYLE_WEIGHT, *job.layer_weights]
                                    for job in jobs], device=self.device).T
            self._stacked = content, styles, edges, weights
        return self._stacked

    def _iterate(self, jobs: list[_Job]) -> None:
        """One iteration of the batch on the device (replayed from a graph where there is one), then its losses
        read back at once: each job's progress and whether it diverged."""
        if tuple(job.index for job in jobs) != self.rows.members:  # jobs left (stopped or diverged)
            self.rows.keep(jobs)
        temporal = any(job.temporal_loss is not None for job in jobs)
        advance = functools.partial(self._advance, jobs, temporal)
        values = self.rows.graph.run(advance) if self.rows.graph else advance()
        names = LOSS_NAMES + ("temporal",) * temporal
        for job, row in zip(jobs, values.tolist()):  # the one synchronisation
            job.losses = dict(zip(names, row))
            if job.temporal_loss is None:
                job.losses.pop("temporal", None)
            if not all(math.isfinite(value) for value in row):
                job.error = "The optimisation diverged (the loss is not finite); try a lower strength."
                job.elapsed = time.perf_counter() - self.started
                continue
            job.iteration += 1

    def _advance(self, jobs: list[_Job], temporal: bool) -> torch.Tensor:
        """One forward/backward pass for the whole batch and the optimiser's step (_Rows.step); returns the loss
        values, a row per job: content, style, tv, total and, when ``temporal``, the temporal term (0 for a job
        without one)."""
        images = self.rows.images
        # Whole maps with their crop boxes: the Gram works on them without copying the crop (losses.py).
        features = self._features(images, (self.content_layer, *self.style_layers), framed=True)
        content_target, style_targets, edge_target, weights = self._stacked_targets(jobs)
        per_layer = [style_loss(gram(features[name]), style_targets[name]) for name in self.style_layers]
        content = content_loss(features[self.content_layer].crop, content_target)
        tv = tv_loss(images)
        count = len(self.style_layers)
        style_weights, content_weight, tv_weight, edge_weight = weights[:count], *weights[count:count + 3]
        per_layer = torch.stack(per_layer)
        total = (style_weights * per_layer).sum(0) + content_weight * content + tv_weight * tv
        if EDGE_WEIGHT:
            total = total + edge_weight * edge_loss(images, edge_target, EDGE_TOLERANCE)
        columns = [content.detach(), (weights[count + 3:] * per_layer.detach()).sum(0), tv.detach()]
        if temporal:
            terms = torch.stack([job.temporal_loss(images[row:row + 1]) if job.temporal_loss is not None
                                 else images.new_zeros(()) for row, job in enumerate(jobs)])
            total = total + terms
        (gradient,) = torch.autograd.grad(total.sum() * self.loss_scale, images)
        if self.loss_scale != 1.0:
            gradient = gradient / self.loss_scale
        columns.append(total.detach())
        if temporal:
            columns.append(terms.detach())
        values = torch.stack(columns).T
        self.rows.step(values, gradient)
        return values

    def _report(self, job: _Job, scale_index: int) -> None:
        if self.on_progress is None or not job.running:
            return
        elapsed = time.perf_counter() - self.started
        remaining = self.work_total - self.work_done
        eta = elapsed * remaining / self.work_done if self.work_done else None
        preview = None
        every = job.options.preview_every
        if every and (job.iteration % every == 0 or job.iteration == self.total):
            preview = resize_long_side(job.finish(job.best_image, self.out_size), job.options.preview_size)
        height, width = self.rows.images.shape[-2:]
        self.on_progress(job.index, Progress(job.iteration, self.total, scale_index, len(self.schedule), width,
                                             height, dict(job.losses), elapsed, eta, preview))


class _Rows:
    """A batch's optimisation state at one scale, a row per job: the images, the best evaluated image and its
    loss, and the optimiser's memory, all on the device and updated in place (so a graph replays an iteration).

    The best evaluated image is what a scale hands on and a job returns (each job's ``best_image`` is its row):
    the step after the last evaluation is never scored, and an overshoot there would otherwise be the result.
    """

    def __init__(self, jobs: list[_Job], starts: list[torch.Tensor], history: int,
                 graphs: Callable[[], IterationGraph | None] | None) -> None:
        self.images = torch.cat(starts).requires_grad_(True)
        self.best_images = self.images.detach().clone()
        device = self.images.device
        self.best_losses = torch.full((len(jobs),), math.inf, dtype=torch.float64, device=device)
        self.restarts = jobs[0].options.optimizer == "lbfgs"  # a batch has one optimiser (Engine.stylize_batch)
        size = self.images[0].numel()
        self.optimizer = (BatchedLBFGS(len(jobs), size, history, device=device, max_step_rms=LBFGS_MAX_STEP_RMS,
                                       static=graphs is not None) if self.restarts
                          else BatchedAdam([job.options.learning_rate for job in jobs], size, device=device))
        self.graphs = graphs
        self._attach(jobs)

    def _attach(self, jobs: list[_Job]) -> None:
        self.jobs, self.members = jobs, tuple(job.index for job in jobs)
        for row, job in enumerate(jobs):
            job.best_image = self.best_images[row:row + 1]
        self.graph = self.graphs() if self.graphs else None  # a new one for every new set of rows

    def keep(self, jobs: list[_Job]) -> None:
        """Only these jobs' rows from now on; a job that left keeps a copy of its best image (not the whole
        batch's)."""
        for job in self.jobs:
            if job not in jobs:
                job.best_image = job.best_image.clone()
        rows = torch.tensor([self.members.index(job.index) for job in jobs], device=self.images.device)
        self.images = self.images.detach().index_select(0, rows).requires_grad_(True)
        self.best_images = self.best_images.index_select(0, rows)
        self.best_losses = self.best_losses.index_select(0, rows)
        self.optimizer.keep(rows)
        self._attach(jobs)

    @torch.no_grad()
    def step(self, values: torch.Tensor, gradient: torch.Tensor) -> None:
        """Scores the images just evaluated (``values``: their losses, as _Batch._advance returns them) and steps
        them along ``gradient``. A row whose loss is not finite gets no gradient (its job ends there, with its best image); an
        L-BFGS row that overshot goes back to its best image, forgets its memory and waits one step."""
        images = self.images
        finite = torch.isfinite(values).all(1)
        value = values[:, LOSS_NAMES.index("total")].double()
        overshot = (finite & (value > self.best_losses * LBFGS_RESTART_JUMP) if self.restarts
                    else torch.zeros_like(finite))
        improved = finite & ~overshot & (value < self.best_losses)
        self.best_losses.copy_(torch.where(improved, value, self.best_losses))
        self.best_images.copy_(torch.where(_each_pixel(improved), images, self.best_images))
        images.copy_(torch.where(_each_pixel(overshot), self.best_images, images))
        flat, gradient = images.view(len(images), -1), torch.where(_each_pixel(finite), gradient, 0.0).flatten(1)
        if self.restarts:
            self.optimizer.forget(overshot)
            moved = self.optimizer.step(flat, gradient, overshot | ~finite)
        else:
            moved = self.optimizer.step(flat, gradient)
        images.copy_(moved.view_as(images))


def _each_pixel(rows: torch.Tensor) -> torch.Tensor:
    """A per-row mask shaped to select whole images of a batch."""
    return rows.view(-1, 1, 1, 1)


def stylize(content: ImageSource, styles: Sequence[ImageSource] | ImageSource, options: StylizeOptions | None = None,
            *, weights: str | None = None, on_progress: ProgressCallback | None = None,
            should_stop: StopCheck | object | None = None, **overrides: object) -> StylizeResult:
    """One-shot convenience: load the weights, stylise, return the result.

    ``overrides`` are option names (``size=384, iterations=100``) validated like user input.
    """
    if not isinstance(styles, (list, tuple)):
        styles = [styles]
    options = options or StylizeOptions()
    if overrides:
        options = options.replace(**overrides)
    return Engine(weights).stylize(content, styles, options, on_progress=on_progress, should_stop=should_stop)
