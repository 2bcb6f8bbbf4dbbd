"""The optimisation: coarse-to-fine Gatys style transfer with progress, previews and cancellation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from . import color
from .errors import NSTError, OptionError
from .images import ImageSource, load_image, resize_long_side
from .layers import LAYER_INDEX
from .losses import content_loss, gram, style_loss, tv_loss
from .network import VGGEncoder
from .options import StylizeOptions
from .weights import load_weights


@dataclass(frozen=True)
class Progress:
    """Reported after every iteration. ``iteration`` counts from 1 over all scales up to ``total``."""

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

    @property
    def fraction(self) -> float:
        return self.iteration / self.total if self.total else 1.0


@dataclass
class StylizeResult:
    image: Image.Image
    iterations: int
    cancelled: bool
    elapsed: float
    losses: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Scale:
    long_side: int
    iterations: int


def scale_schedule(size: int, iterations: int, min_scale: int, ratio: float) -> list[Scale]:
    """Sizes from coarse to ``size`` (each ``ratio`` apart) and an exact split of ``iterations`` over them.

    Coarse scales cost less per iteration, so they get more: iterations are split in proportion to
    ratio^(steps below the finest scale). The split sums to ``iterations`` exactly; scales that would get no
    iteration are dropped from the coarse end.
    """
    sizes = [size]
    while round(sizes[-1] / ratio) >= min_scale:
        sizes.append(round(sizes[-1] / ratio))
    sizes = sizes[::-1][-iterations:]
    shares = [ratio ** (len(sizes) - 1 - k) for k in range(len(sizes))]
    exact = [iterations * share / sum(shares) for share in shares]
    counts = [max(1, math.floor(value)) for value in exact]
    # Largest remainder, then trim from the coarsest scales if the minimum of 1 overshot.
    order = sorted(range(len(sizes)), key=lambda k: exact[k] - math.floor(exact[k]), reverse=True)
    for k in order[: max(0, iterations - sum(counts))]:
        counts[k] += 1
    k = 0
    while sum(counts) > iterations:
        if counts[k] > 1:
            counts[k] -= 1
        else:
            k += 1
    return [Scale(s, n) for s, n in zip(sizes, counts)]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


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


def scaled_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) with the long side ``long_side`` and the same aspect ratio."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class Engine:
    """A loaded VGG19, reusable across many stylize calls (the engine process keeps one)."""

    def __init__(self, weights: str | None = None, *, configured: str | None = None) -> None:
        """``weights`` is an explicit file; ``configured`` the config's, used after ``$NST_WEIGHTS``."""
        self._convs = load_weights(weights, configured)
        self._encoders: dict[tuple[str, str, str], VGGEncoder] = {}

    def encoder(self, device: torch.device, pooling: str, last_layer: str) -> VGGEncoder:
        key = (str(device), pooling, last_layer)
        if key not in self._encoders:
            self._encoders[key] = VGGEncoder(self._convs, last_layer, pooling).to(device)
        return self._encoders[key]

    def stylize(self, content: ImageSource, styles: Sequence[ImageSource], options: StylizeOptions | None = None,
                *, on_progress: ProgressCallback | None = None,
                should_stop: StopCheck | object | None = None) -> StylizeResult:
        """Stylise ``content`` with the blended ``styles``; see :class:`StylizeOptions` for the knobs."""
        options = options or StylizeOptions()
        if not styles:
            raise OptionError("at least one style image is needed")
        blend = options.normalized_style_weights(len(styles))
        content_image = load_image(content, what="content image")
        style_images = [load_image(style, what="style image") for style in styles]
        return _Run(self, content_image, style_images, blend, options, on_progress, _stop_check(should_stop)).run()


class _Run:
    """One stylize call: state shared by its scales."""

    def __init__(self, engine: Engine, content: Image.Image, styles: list[Image.Image], blend: tuple[float, ...],
                 options: StylizeOptions, on_progress: ProgressCallback | None, stop: StopCheck) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        layers = (options.content_layer, *options.style_layers)
        self.last_layer = max(layers, key=LAYER_INDEX.__getitem__)
        self.encoder = engine.encoder(self.device, options.pooling, self.last_layer)
        self.content, self.styles, self.blend = content, styles, blend
        self.on_progress, self.stop = on_progress, stop
        self.layer_weights = options.style_layer_weights or (1.0,) * len(options.style_layers)
        self.schedule = scale_schedule(options.size, options.iterations, options.min_scale, options.scale_ratio)
        self.out_size = scaled_size(*content.size, options.size)
        self.work_total = sum(self._pixels(s.long_side) * s.iterations for s in self.schedule)
        self.work_done = 0.0
        self.iteration = 0
        self.losses: dict[str, float] = {}

    def _pixels(self, long_side: int) -> int:
        w, h = scaled_size(*self.content.size, long_side)
        return w * h

    def run(self) -> StylizeResult:
        torch.manual_seed(self.options.seed)
        self.started = time.perf_counter()
        image: torch.Tensor | None = None
        cancelled = False
        for index, scale in enumerate(self.schedule):
            image, cancelled = self._run_scale(index, scale, image)
            if cancelled:
                break
        assert image is not None
        result = self._finish(image)
        return StylizeResult(result, self.iteration, cancelled, time.perf_counter() - self.started,
                             dict(self.losses), str(self.device))

    def _prepared_inputs(self, long_side: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Content and style tensors at this scale, with colour preservation applied to what VGG sees."""
        content = to_tensor(resize_long_side(self.content, long_side), self.device)
        style_side = max(16, round(long_side * self.options.style_scale))
        styles = [to_tensor(resize_long_side(style, style_side), self.device) for style in self.styles]
        mode = self.options.preserve_colors
        if mode == "luminance":
            styles = [color.match_luminance(style, content) for style in styles]
            content = color.luminance(content)
        elif mode == "histogram":
            styles = [color.match_histogram(style, content) for style in styles]
        return content, styles

    @torch.no_grad()
    def _targets(self, content: torch.Tensor, styles: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Content features and blended style Grams, computed once per scale without gradients."""
        options = self.options
        content_target = self.encoder(content, [options.content_layer])[options.content_layer]
        grams: dict[str, torch.Tensor] = {}
        for weight, style in zip(self.blend, styles):
            features = self.encoder(style, options.style_layers)
            for name in options.style_layers:
                grams[name] = grams.get(name, 0) + weight * gram(features[name])
        return content_target, grams

    def _run_scale(self, index: int, scale: Scale, previous: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        options = self.options
        content, styles = self._prepared_inputs(scale.long_side)
        content_target, style_targets = self._targets(content, styles)
        if previous is not None:
            start = F.interpolate(previous, size=content.shape[-2:], mode="bicubic", align_corners=False)
        elif options.init == "noise":
            generator = torch.Generator().manual_seed(options.seed)
            start = torch.rand(content.shape, generator=generator).to(self.device)
        else:
            start = content
        image = start.detach().clamp(0, 1).contiguous().requires_grad_(True)
        optimizer = (torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=50)
                     if options.optimizer == "lbfgs" else torch.optim.Adam([image], lr=options.learning_rate))
        style_scale = options.style_weight * options.strength / sum(self.layer_weights)
        parts: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            wanted = (options.content_layer, *options.style_layers)
            features = self.encoder(image, wanted)
            parts["content"] = content_loss(features[options.content_layer], content_target).sum()
            parts["style"] = sum(w * style_loss(gram(features[name]), style_targets[name]).sum()
                                 for w, name in zip(self.layer_weights, options.style_layers))
            parts["tv"] = tv_loss(image).sum()
            total = (options.content_weight * parts["content"] + style_scale * parts["style"]
                     + options.tv_weight * parts["tv"])
            total.backward()
            parts["total"] = total.detach()
            return total

        pixels = self._pixels(scale.long_side)
        for _ in range(scale.iterations):
            if self.stop():
                return image.detach(), True
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0, 1)
            self.iteration += 1
            self.work_done += pixels
            self.losses = {name: float(value.detach()) for name, value in parts.items()}
            if not all(math.isfinite(v) for v in self.losses.values()):
                raise NSTError("The optimisation diverged (the loss is not finite); try a lower strength.")
            self._report(index, image)
        return image.detach(), False

    def _report(self, index: int, image: torch.Tensor) -> None:
        if self.on_progress is None:
            return
        elapsed = time.perf_counter() - self.started
        remaining = self.work_total - self.work_done
        eta = elapsed * remaining / self.work_done if self.work_done else None
        preview = None
        every = self.options.preview_every
        if every and (self.iteration % every == 0 or self.iteration == self.options.iterations):
            preview = resize_long_side(self._finish(image.detach()), self.options.preview_size)
        h, w = image.shape[-2:]
        self.on_progress(Progress(self.iteration, self.options.iterations, index, len(self.schedule), w, h,
                                  dict(self.losses), elapsed, eta, preview))

    def _finish(self, image: torch.Tensor) -> Image.Image:
        """The current image at the output size, with the content's chroma in luminance mode."""
        width, height = self.out_size
        if tuple(image.shape[-2:]) != (height, width):
            image = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False)
        if self.options.preserve_colors == "luminance":
            content = to_tensor(self.content.resize((width, height), Image.Resampling.LANCZOS), image.device)
            image = color.combine_luminance(image, content)
        return to_image(image)


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
