"""The one definition of a stylize request: fields, defaults and bounds.

The CLI flags, the Discord slash-command options and the plug-in inputs are all generated from, or validated
by, :class:`StylizeOptions`. Importing this module does not import torch, so the bot's event loop can use it.
"""

from __future__ import annotations

import dataclasses
import typing
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .errors import OptionError
from .typed import convert, field_types
from .images import scaled_size

PRESERVE_COLORS = ("none", "luminance", "histogram")
DEVICES = ("auto", "cpu", "cuda")
POOLINGS = ("avg", "max")
INITS = ("content", "noise")
OPTIMIZERS = ("lbfgs", "adam")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# The least share of the iterations that runs at the output size. Geometric shares alone leave 1/15 of the
# budget (5 of 80 iterations at 1024 px) there, too few to build detail the coarse scales could not hold;
# 1/5 keeps two-scale schedules (up to 2 × min_scale) as they were. Measured in benchmarks/quality.py.
FINEST_SHARE = 0.2

# The temporal loss weight of animations (nst_engine/temporal.py): the mean squared change from the previous
# stylised frame, warped along the motion, on the pixels the flow tracks. Measured in benchmarks/animation.py.
TEMPORAL_WEIGHT = 100.0

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


def _option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            choices: tuple[str, ...] | None = None, user: bool = False) -> Any:
    """A dataclass field carrying its bounds and help text.

    ``user=True`` marks options that end users (Discord members, plug-in dialogs) may set; the rest are
    for the CLI, benchmarks and admins.
    """
    meta = {"help": help, "low": low, "high": high, "choices": choices, "user": user}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class StylizeOptions:
    """Everything that shapes one stylized image. Build with :meth:`from_mapping` to validate user input."""

    size: int = _option(512, "long side of the output in pixels", low=16, high=4096, user=True)
    iterations: int = _option(80, "total optimiser iterations over all scales (a hard bound)",
                              low=1, high=5000, user=True)
    strength: float = _option(1.0, "style strength: multiplies the style loss weight", low=0.01, high=100.0,
                              user=True)
    style_weights: tuple[float, ...] = _option((), "blend weights of the style images (empty: equal)",
                                               low=0.0, high=1000.0, user=True)
    style_scale: float = _option(1.0, "style image size relative to the output", low=0.1, high=4.0, user=True)
    preserve_colors: str = _option("none", "keep the content's colours", choices=PRESERVE_COLORS, user=True)
    seed: int = _option(0, "random seed: 0 starts from the content itself, any other seed from a jittered "
                        "copy for a different take (deterministic on the CPU)", low=0, high=2**31 - 1, user=True)
    temporal_weight: float = _option(TEMPORAL_WEIGHT, "animations: how strongly each frame keeps the previous "
                                     "stylised frame where the picture moves along (0: every frame on its own)",
                                     low=0.0, high=10000.0, user=True)
    device: str = _option("auto", "where to run", choices=DEVICES)
    precision: str = _option("auto", "arithmetic precision (auto: bf16/fp16 where the hardware has it)",
                             choices=PRECISIONS)
    content_weight: float = _option(1.0, "content loss weight", low=0.0, high=1e6)
    style_weight: float = _option(5.0, "style loss weight before strength", low=0.0, high=1e6)
    tv_weight: float = _option(2.0, "total-variation (smoothness) weight", low=0.0, high=1e6)
    content_layer: str = _option(CONTENT_LAYER, "VGG19 layer for the content loss")
    style_layers: tuple[str, ...] = _option(STYLE_LAYERS, "VGG19 layers for the style loss")
    style_layer_weights: tuple[float, ...] = _option((), "per-layer style weights (empty: equal)",
                                                     low=0.0, high=1e6)
    pooling: str = _option("avg", "VGG19 pooling", choices=POOLINGS)
    init: str = _option("content", "starting image", choices=INITS)
    optimizer: str = _option("lbfgs", "optimiser", choices=OPTIMIZERS)
    learning_rate: float = _option(0.02, "Adam step size (pixels in 0..1)", low=1e-5, high=1.0)
    min_scale: int = _option(128, "long side of the coarsest scale", low=16, high=4096)
    scale_ratio: float = _option(2.0, "size ratio between consecutive scales", low=1.1, high=4.0)
    preview_every: int = _option(0, "send a preview image every N iterations (0: never)", low=0, high=100000)
    preview_size: int = _option(256, "long side of preview images", low=16, high=1024)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))
        from .layers import LAYER_INDEX  # torch-free table of VGG19 layer names

        for name in (self.content_layer, *self.style_layers):
            if name not in LAYER_INDEX:
                raise OptionError(f"unknown VGG19 layer {name!r}; use names like relu1_1 … relu5_4")
        if not self.style_layers:
            raise OptionError("at least one style layer is needed")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise OptionError(f"style_layer_weights has {len(self.style_layer_weights)} values for "
                              f"{len(self.style_layers)} style layers")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "StylizeOptions":
        """Validate loosely typed input (CLI strings, JSON, plug-in widgets) into options."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise OptionError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**{name: _coerce(known[name], value) for name, value in values.items() if value is not None})

    def replace(self, **changes: Any) -> "StylizeOptions":
        return StylizeOptions.from_mapping({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def clamped(self, *, max_size: int | None = None, max_iterations: int | None = None) -> "StylizeOptions":
        """Apply admin caps: the one place where user requests are limited."""
        size = min(self.size, max_size) if max_size else self.size
        iterations = min(self.iterations, max_iterations) if max_iterations else self.iterations
        return dataclasses.replace(self, size=size, iterations=iterations)

    def normalized_style_weights(self, count: int) -> tuple[float, ...]:
        """Blend weights for ``count`` style images, summing to 1."""
        weights = self.style_weights or (1.0,) * count
        if len(weights) != count:
            raise OptionError(f"{len(weights)} style weight(s) given for {count} style image(s)")
        total = sum(weights)
        if total <= 0:
            raise OptionError("style weights must not all be zero")
        return tuple(w / total for w in weights)

    def schedule(self) -> list["Scale"]:
        """The coarse-to-fine scales this request runs and the iterations at each."""
        return scale_schedule(self.size, self.iterations, self.min_scale, self.scale_ratio)

    def cost(self, content_size: tuple[int, int]) -> float:
        """Relative work of the request: pixels × iterations summed over the scales (one forward/backward
        pass costs about its pixel count). ``content_size`` is the upright content's (width, height).
        Torch-free, for queue estimates; the engine's progress ETA weighs iterations the same way."""
        width, height = scaled_size(*content_size, self.size)
        return float(sum(math.prod(scaled_size(width, height, scale.long_side)) * scale.iterations
                         for scale in self.schedule()))

    def batch_key(self, content_size: tuple[int, int]) -> tuple:
        """Jobs with equal keys can share one batch: same output size, scale schedule, device and network.

        ``content_size`` is the upright content image's (width, height), e.g. from ``images.probe_image``.
        Everything else (styles, weights, strength, colours, seed, optimiser) may differ inside a batch.
        Torch-free, so the bot's dispatcher can group waiting jobs before they reach the engine process.
        """
        return (scaled_size(*content_size, self.size), self.size, self.iterations, self.min_scale,
                self.scale_ratio, self.device, self.precision, self.pooling, self.content_layer,
                tuple(self.style_layers))


@dataclass(frozen=True)
class Scale:
    long_side: int
    iterations: int


def scale_schedule(size: int, iterations: int, min_scale: int, ratio: float) -> list[Scale]:
    """Sizes from coarse to ``size`` (each ``ratio`` apart) and an exact split of ``iterations`` over them.

    Coarse scales cost less per iteration, so they get more: iterations are split in proportion to
    ratio^(steps below the finest scale), except that the finest scale gets at least ``FINEST_SHARE``. The
    split sums to ``iterations`` exactly; scales that would get no iteration are dropped from the coarse end.
    """
    sizes = [size]
    while round(sizes[-1] / ratio) >= min_scale:
        sizes.append(round(sizes[-1] / ratio))
    sizes = sizes[::-1][-iterations:]
    shares = [ratio ** (len(sizes) - 1 - k) for k in range(len(sizes))]
    finest = max(shares[-1] / sum(shares), FINEST_SHARE) if len(sizes) > 1 else 1.0
    coarser = sum(shares[:-1])
    exact = [iterations * (1 - finest) * share / coarser for share in shares[:-1]] + [iterations * finest]
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


@dataclass(frozen=True)
class OptionSpec:
    """What a front end needs to render one option: name, type, default, bounds, help."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None
    user: bool


def option_specs(user_only: bool = False) -> Iterator[OptionSpec]:
    """The options with their bounds, in declaration order, for generating CLIs and forms."""
    for f in dataclasses.fields(StylizeOptions):
        meta = f.metadata
        if user_only and not meta["user"]:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield OptionSpec(f.name, _base_type(f), default, meta["help"], meta["low"], meta["high"],
                         meta["choices"], meta["user"])


def option_spec(name: str) -> OptionSpec:
    for spec in option_specs():
        if spec.name == name:
            return spec
    raise KeyError(name)


def _base_type(f: dataclasses.Field) -> type:
    kind = field_types(StylizeOptions)[f.name]
    return typing.get_origin(kind) or kind


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    try:
        converted = convert(value, field_types(StylizeOptions)[f.name])
    except ValueError as expected:
        raise OptionError(f"{f.name} must be {expected}, not {value!r}") from None
    return converted.lower() if f.metadata["choices"] else converted


def _check(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if meta["choices"] and item not in meta["choices"]:
            raise OptionError(f"{f.name} must be one of {', '.join(meta['choices'])}, not {item!r}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if item != item:  # NaN
                raise OptionError(f"{f.name} must be a number, not NaN")
            low, high = meta["low"], meta["high"]
            if (low is not None and item < low) or (high is not None and item > high):
                raise OptionError(f"{f.name} must be between {_fmt(low)} and {_fmt(high)}, not {_fmt(item)}")


def _fmt(number: float | None) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


@dataclass(frozen=True)
class QualityLevel:
    """A named preset of size and iteration budget that users pick instead of raw numbers."""

    name: str
    size: int
    iterations: int
    description: str = ""


# Defaults; admins override them in config ([quality.NAME]); benchmarks/README.md gives the measurements behind them
# (the times: benchmarks/out/engine-levels-cpu.json, a 2-core AVX2 EPYC; tests/test_docs.py holds them to it).
QUALITY_LEVELS: dict[str, QualityLevel] = {
    level.name: level
    for level in (
        QualityLevel("fast", 256, 45, "quick look, about 20 s on a 2-core CPU"),
        QualityLevel("standard", 512, 80, "good default, about 70 s on a 2-core CPU"),
        QualityLevel("high", 768, 120, "large and detailed, about 3.5 minutes on a 2-core CPU"),
    )
}
