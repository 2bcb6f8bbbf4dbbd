"""Result quality of nst_engine before and after each of its quality choices, measured in one run.

    python benchmarks/quality.py                    # every section at the sizes below
    python benchmarks/quality.py --only border      # one section (repeatable)
    python benchmarks/quality.py --only border --device cuda --border-size 512:80 --border "frame 8"

Not a timed test: each section runs the engine as it is and with one choice set back to its earlier value
("before"), on the same content/style pair and seeded random VGG19 (no pretrained weights here), then prints
the figure and writes a contact sheet ``benchmarks/out/quality-SECTION.png`` (content | style | before |
after) and ``benchmarks/out/quality.json``. Sections:

- border: per side and colour channel, the seed-averaged jump in mean colour from the outer 6-px ring to the
  next minus the content's own (with the same figure between rings inside as its floor), and the pooled between the outermost 6-px ring of the picture and the next ring, beside the
  same jump between rings inside the picture (its own texture), each averaged over several seeds' results
  first, for every way of treating the border in ``BORDERS`` (zero padding, reflected or replicated padding in
  every convolution, mirrored frames around the input) and every preset in ``BORDER_PRESETS``, at the sizes of
  ``--border-size`` (``--device cuda`` for real sizes); on the CPU also one forward/backward pass per
  candidate at 256 and 384 px (passes interleaved, so load from neighbours hits all); ``--content``,
  ``--vgg-seed`` and ``--turned`` are the controls that tell a band the network paints from the picture's own;
- asymmetry: per preset, how much harder the style gradient pushes each side's outer ring than rings inside on
  stationary noise, with the kernels as they are and mirrored (the side pushed follows the kernels), and
  without the deep crop of ``DEEP_MARGIN``;
- rounding: per padding, how far one forward/backward pass of a batch of two lies from the same image's pass
  alone (gradient at every ReLU), and how far whole batched jobs end from their one-by-one results, beside
  the same job alone run with 1 and with 2 threads (a change of rounding only);
- detail: high-frequency energy at the output size against a long single-scale run at that size, with the
  geometric iteration split before and the finest scale's guaranteed share after, and the time each took;
- colour: the style loss reached with luminance-only and histogram colour preservation, without the style
  gain for colour-preserving jobs (before) and with it (after), beside the loss reached without preservation;
- seeds: how far results of different seeds lie apart with the default content start, and the style loss
  each reaches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.borders import (SIDES, border_jump, border_push, edge_sheet, inner_jump, quarter_excess,  # noqa: E402
                                quarter_floor, side_asymmetry, side_excess, side_floor, systematic_jump)
from benchmarks.engine import STYLE_FILE, content_scene  # noqa: E402
from nst_engine import color, network, options as options_module, transfer  # noqa: E402
from nst_engine import layers as vgg_layers  # noqa: E402
from nst_engine.images import resize_long_side, scaled_size  # noqa: E402
from nst_engine.layers import LAYER_INDEX  # noqa: E402
from nst_engine.losses import gram, style_loss  # noqa: E402
from nst_engine.options import StylizeOptions  # noqa: E402
from nst_engine.transfer import Engine, to_tensor  # noqa: E402

OUT = REPO / "benchmarks" / "out"
SECTIONS = ("border", "asymmetry", "rounding", "detail", "colour", "seeds")
# Ways to treat the picture's border, as settings of nst_engine/layers.py, network.py and transfer.py, each
# complete (so the figures do not depend on the engine's current default): zero padding in every convolution
# (torchvision's), reflected or replicated padding in every convolution (maps under SMALL_MAP px keep zeros), or a
# mirrored frame of FRAME px around the input, cropped off every feature map; with or without the edge loss
# (EDGE_WEIGHT, EDGE_TOLERANCE, EDGE_DEPTH).
ZEROS = {"PADDING_MODE": "zeros", "SMALL_MAP": 8, "FRAME": 0, "MIN_FRAMED": 64, "DEEP_MARGIN": 1, "EDGE_WEIGHT": 0,
         "EDGE_DEPTH": 16, "EDGE_TOLERANCE": 0}
BORDERS = {
    "zeros": ZEROS,
    "reflect": {**ZEROS, "PADDING_MODE": "reflect"},
    "reflect >= 16 px": {**ZEROS, "PADDING_MODE": "reflect", "SMALL_MAP": 16},
    "replicate": {**ZEROS, "PADDING_MODE": "replicate"},
    "frame 8": {**ZEROS, "FRAME": 8},  # short sides under 64 px unframed (the engine before issue 23)
    "frame 8 from 48 px": {**ZEROS, "FRAME": 8, "MIN_FRAMED": 48},  # a 128 px job's 64x48 first scale framed
    "frame 8 from 48 px, deep crop 2": {**ZEROS, "FRAME": 8, "MIN_FRAMED": 48, "DEEP_MARGIN": 2},
    # nothing sees zeros: the frame, and replicated padding in every convolution past it (issue 23's control)
    "frame 8 from 48 px, replicated": {**ZEROS, "FRAME": 8, "MIN_FRAMED": 48, "PADDING_MODE": "replicate"},
    "frame 16": {**ZEROS, "FRAME": 16},
    "frame 16 from 48 px": {**ZEROS, "FRAME": 16, "MIN_FRAMED": 48},
    "frame 32": {**ZEROS, "FRAME": 32},
    # the frame, and a loss holding each side's outer rows to the content's profile (losses.edge_loss)
    **{f"frame 8 from 48 px, edge {weight:g}" + (f" tol {tolerance:g}" if tolerance else "")
       + (f" depth {depth}" if depth != 16 else ""):
       {**ZEROS, "FRAME": 8, "MIN_FRAMED": 48, "EDGE_WEIGHT": weight, "EDGE_TOLERANCE": tolerance, "EDGE_DEPTH": depth}
       for weight, tolerance, depth in ((20, 0, 16), (50, 0, 16), (100, 0, 16), (500, 0, 16), (50, 0.01, 16),
                                        (100, 0.02, 16), (300, 0.02, 16), (50, 0, 32))},
}
PRESETS = REPO / "bot" / "assets" / "presets"
BORDER_PRESETS = tuple(sorted(path.stem for path in PRESETS.glob("*.png")))  # every preset the bot ships
# What a section's "before" sets back: module, constant, earlier value.
BEFORE = {
    "detail": (options_module, "FINEST_SHARE", 0.0),
    "colour": (transfer, "COLOUR_STYLE_GAIN_MAX", 1.0),
    "seeds": (transfer, "SEED_JITTER", 0.0),
}
STYLE_LAYERS = StylizeOptions().style_layers
# The border section's pictures: the landscape, and the controls that tell a band the network paints along a
# side from one that follows the picture (issue 23): upside down, with a sky of one colour, with the sky's
# gradient reversed (darkest at the hills instead of the top).
CONTENTS = {
    "landscape": lambda width, height: content_scene(width, height),
    "upside-down": lambda width, height: ImageOps.flip(content_scene(width, height)),
    "flat-sky": lambda width, height: content_scene(width, height, sky="flat"),
    "reversed-sky": lambda width, height: content_scene(width, height, sky="reversed"),
}


def before(section: str) -> contextlib.AbstractContextManager:
    """The engine with this section's choice set back to its earlier value."""
    return setting(*BEFORE[section])


@contextlib.contextmanager
def border_setting(name: str) -> Iterator[None]:
    """The network with border candidate ``name`` of :data:`BORDERS`."""
    with contextlib.ExitStack() as stack:
        for constant, value in BORDERS[name].items():
            stack.enter_context(setting(_home(constant), constant, value))
        yield


def engine_border() -> str | None:
    """Which candidate the engine uses today."""
    return next((name for name, values in BORDERS.items()
                 if all(getattr(_home(key), key) == value for key, value in values.items())), None)


def _home(constant: str) -> object:
    """The engine module that holds a border setting."""
    return next(module for module in (vgg_layers, network, transfer) if hasattr(module, constant))


@contextlib.contextmanager
def setting(module: object, name: str, value: object) -> Iterator[None]:
    kept = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, kept)


def mean_image(images: list[Image.Image]) -> Image.Image:
    """The pixel-wise mean of same-sized pictures: what results of several seeds share, a frame among it."""
    stacked = np.mean([np.asarray(image.convert("RGB"), float) for image in images], axis=0)
    return Image.fromarray(stacked.round().astype(np.uint8))


def grey_levels(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference of two pictures in grey levels (0..255)."""
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def high_frequency_energy(image: Image.Image) -> float:
    """Mean squared difference between the luminance and its 2-px Gaussian blur (0..1 scale): fine detail."""
    grey = image.convert("L")
    sharp = np.asarray(grey, float) / 255
    blurred = np.asarray(grey.filter(ImageFilter.GaussianBlur(2)), float) / 255
    return float(np.mean((sharp - blurred) ** 2))


def style_distance(engine: Engine, image: Image.Image, style: torch.Tensor) -> float:
    """Sum over the default style layers of the normalised Gram error to ``style`` (an N×3×H×W tensor), in
    fp32 with the engine's network: the style loss, evaluated outside the optimisation."""
    encoder = engine.encoder(torch.device("cpu"), "avg", "relu5_1")
    frame = network.frame_for(image.size)  # both seen as a job of the image's size sees them
    with torch.no_grad():
        a = encoder(to_tensor(image, torch.device("cpu")), STYLE_LAYERS, frame)
        b = encoder(style, STYLE_LAYERS, frame)
        return float(sum(style_loss(gram(a[name]), gram(b[name])) for name in STYLE_LAYERS))


def contact_sheet(path: Path, tiles: list[tuple[str, Image.Image]], height: int = 180) -> Path:
    """Labelled tiles in one row, as a palette PNG (small enough to commit)."""
    scaled = [(label, image.convert("RGB").resize((round(image.width * height / image.height), height),
                                                  Image.Resampling.LANCZOS)) for label, image in tiles]
    sheet = Image.new("RGB", (sum(image.width for _, image in scaled) + 8 * (len(scaled) + 1), height + 30),
                      "white")
    draw, x, font = ImageDraw.Draw(sheet), 8, ImageFont.load_default()
    for label, image in scaled:
        sheet.paste(image, (x, 24))
        draw.text((x, 6), label, fill="black", font=font)
        x += image.width + 8
    sheet.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


class Bench:
    """The shared inputs: weights, content, style, and the results of every section."""

    def __init__(self, weights: Path, quick: bool, device: str = "cpu", seeds: int = 8,
                 border_cases: tuple[tuple[str, int, int], ...] = (), border_content: str = "landscape",
                 sheets: tuple[str, ...] = ("mosaic",), turned: bool = False,
                 border_options: dict | None = None) -> None:
        self.weights, self.quick, self.device, self.seeds = str(weights), quick, device, seeds
        self.border_options = border_options or {}  # more options of the border cases' jobs (strength, colours)
        self.border_cases, self.border_content, self.sheets = border_cases, border_content, sheets
        self.turned = turned  # also run each border case on the picture turned 180° (side_asymmetry)
        self.content, self.style = content_scene(), Image.open(STYLE_FILE).convert("RGB")
        self.report: dict = {"torch": torch.__version__, "quick": quick}
        # Colour and seed runs: output size and iterations (two scales, 2:1).
        self.small = dict(size=128, iterations=20) if quick else dict(size=256, iterations=40)

    def at(self, size: int) -> tuple[Image.Image, torch.Tensor, torch.Tensor]:
        """The content image at the output size, and content and style tensors as the engine prepares them."""
        content = self.content.resize(scaled_size(*self.content.size, size), Image.Resampling.LANCZOS)
        cpu = torch.device("cpu")
        return content, to_tensor(content, cpu), to_tensor(resize_long_side(self.style, size), cpu)

    def run(self, section: str | None = None, **changes: object) -> tuple[Image.Image, float]:
        """One job with a fresh engine (so a changed network constant takes effect); image and seconds."""
        context = before(section) if section else contextlib.nullcontext()
        with context:
            result = Engine(self.weights).stylize(self.content, [self.style], StylizeOptions(**changes))
        return result.image, result.elapsed

    def border(self) -> None:
        """Every border candidate on every case, over several seeds: the frame each leaves (the seed-averaged
        ring jump) and what it costs (job seconds on a GPU; interleaved passes on a CPU, where whole jobs swing
        with the load)."""
        rows: dict = {}
        device = torch.device(transfer.resolve_device(self.device))
        for preset, width, height, iterations in self.border_cases:
            style = Image.open(PRESETS / f"{preset}.png").convert("RGB")
            content, size = CONTENTS[self.border_content](width, height), max(width, height)
            options = StylizeOptions(size=size, iterations=iterations, min_scale=min(128, size // 2),
                                     device=self.device, **self.border_options)
            case, averaged, first = rows.setdefault(f"{preset} {width}x{height} {iterations} its", {}), {}, {}
            case["content_variant"], case["options"] = self.border_content, self.border_options
            for name in BORDERS:
                with border_setting(name):
                    engine = Engine(self.weights)
                    if device.type == "cuda":  # a warm-up job: the first one pays CUDA's start-up
                        engine.stylize(content, [style], options.replace(iterations=2))
                    results = [engine.stylize(content, [style], options.replace(seed=seed))
                               for seed in range(self.seeds)]
                    turned = ([engine.stylize(content.rotate(180), [style], options.replace(seed=seed)).image
                               for seed in range(self.seeds)] if self.turned else [])
                images = [result.image for result in results]
                edge, inside = systematic_jump(images)
                case[name] = {"edge": edge, "inside": inside, "ratio": edge / inside,
                              "single_ratio": float(np.mean([border_jump(i) / inner_jump(i) for i in images])),
                              "sides": side_excess(images, content), "floor": side_floor(images, content),
                              "quarters": quarter_excess(images, content),
                              "quarter_floor": quarter_floor(images, content),
                              "seconds": float(np.median([result.elapsed for result in results])),
                              "losses": {key: float(np.median([result.losses[key] for result in results]))
                                         for key in ("content", "style", "total")}}
                if turned:
                    case[name]["side_asymmetry"] = side_asymmetry(images, turned)
                averaged[name], first[name] = mean_image(images), images[0]
            case["content"] = {"edge": border_jump(content), "inside": inner_jump(content)}
            baseline = next(iter(BORDERS))
            print(f"  {preset} {width}×{height} ({self.border_content}), {iterations} its, {self.seeds} seeds, "
                  f"per side |seed-averaged jump "
                  f"− content's| (worst channel; inside floor):", flush=True)
            for name in BORDERS:
                row = case[name]
                print(f"    {name:18s} " + " ".join(f"{side} {row['sides'][side]:.3f}" for side in SIDES)
                      + f" (floor {row['floor']:.3f}; worst quarter {max(row['quarters'].values()):.3f}, floor "
                        f"{row['quarter_floor']:.3f}; style loss {row['losses']['style']:.3g}, content "
                        f"{row['losses']['content']:.3g})" + ("; against the picture turned 180°: " + " ".join(
                          f"{side} {value:.3f}" for side, value in row["side_asymmetry"].items())
                          if "side_asymmetry" in row else "") + f"; pooled ratio {row['ratio']:.2f}; "
                      f"{row['seconds'] / case[baseline]['seconds']:.2f}× the time of {baseline}", flush=True)
            if preset in self.sheets:
                label = engine_border()
                tiles = [(name + (" (engine)" if name == label else ""), image) for name, image in averaged.items()]
                stem = f"quality-border-{width}x{height}" + ("" if preset == "mosaic" else f"-{preset}") + (
                    "" if self.border_content == "landscape" else f"-{self.border_content}")
                contact_sheet(OUT / f"{stem}-mean.png", [("content", content), ("style", style)] + tiles, height=150)
                edge_sheet(OUT / f"{stem}-edges.png", [("content", content)] + tiles)
        summary = {name: float(np.mean([case[name]["ratio"] for case in rows.values()])) for name in BORDERS}
        worst = {name: max(max(case[name]["sides"].values()) for case in rows.values()) for name in BORDERS}
        print("  mean pooled ratio over the cases: " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in summary.items())
              + "; worst side over the cases: " + ", ".join(f"{name} {value:.3f}" for name, value in worst.items()),
              flush=True)
        rows["mean ratio"], rows["worst side"] = summary, worst
        self.report["border"] = rows
        if device.type == "cpu" and len(BORDERS) > 1:  # one candidate: nothing to compare its pass with
            self.report["border_pass_seconds"] = {size: self.padding_speed(size) for size in (256, 384)}

    def asymmetry(self) -> None:
        """Which side the network pushes (:func:`border_push` on noise), per preset at 128 and 256 px: the
        engine, its kernels mirrored up-down and left-right (the excess follows the kernels: their asymmetry is
        the cause), and without the deep crop (``DEEP_MARGIN`` 0)."""
        rows: dict = {}
        for preset in BORDER_PRESETS:
            style = Image.open(PRESETS / f"{preset}.png").convert("RGB")
            for size in ((128, 96), (256, 192)):
                row = rows.setdefault(f"{preset} {size[0]}x{size[1]}", {})
                for label, margin, flip in (("engine", network.DEEP_MARGIN, ()), ("kernels up-down", network.DEEP_MARGIN, (2,)),
                                            ("kernels left-right", network.DEEP_MARGIN, (3,)), ("no deep crop", 0, ()),
                                            ("no deep crop, kernels up-down", 0, (2,))):
                    with setting(network, "DEEP_MARGIN", margin):
                        encoder = Engine(self.weights).encoder(torch.device("cpu"), "avg", "relu5_1")
                        row[label] = border_push(encoder, style, size, flip=flip)
                    print(f"  {preset} {size[0]}×{size[1]} {label:30s} " + " ".join(
                        f"{side} {value:.1f}" for side, value in row[label].items()), flush=True)
        self.report["asymmetry"] = rows

    def padding_speed(self, size: int, repeats: int = 5) -> dict[str, float]:
        """Median seconds of one forward/backward pass through the network per border candidate at ``size``."""
        layers = (StylizeOptions().content_layer, *STYLE_LAYERS)
        image = to_tensor(self.at(size)[0], torch.device("cpu")).contiguous(memory_format=torch.channels_last)
        image.requires_grad_(True)
        encoders = {}
        for name in BORDERS:
            with border_setting(name):
                encoder = Engine(self.weights).encoder(torch.device("cpu"), "avg", "relu5_1")
                encoders[name] = (encoder, network.frame_for(image.shape[-2:]))
        times: dict[str, list[float]] = {name: [] for name in BORDERS}
        for _ in range(repeats + 1):
            for name, (encoder, frame) in encoders.items():
                started = time.perf_counter()
                sum(feature.square().mean() for feature in encoder(image, layers, frame).values()).backward()
                times[name].append(time.perf_counter() - started)
                image.grad = None
        seconds = {name: float(np.median(values[1:])) for name, values in times.items()}
        print(f"  one pass at {size} px: " + ", ".join(
            f"{name} {value:.3f} s ({value / next(iter(seconds.values())):.2f}×)" for name, value in seconds.items()),
            flush=True)
        return seconds

    def rounding(self) -> None:
        """Batched and one-by-one jobs differ by rounding: the batch's convolutions are blocked differently.
        Shows the size of that difference per layer and what L-BFGS makes of it, per padding mode."""
        content = content_scene(48, 32)
        style = Image.open(PRESETS / "embers.png").convert("RGB").resize((64, 64), Image.Resampling.LANCZOS)
        jobs = [transfer.BatchRequest(content, [style], StylizeOptions(size=48, min_scale=24, iterations=10)),
                transfer.BatchRequest(content.transpose(Image.Transpose.FLIP_LEFT_RIGHT), [style.rotate(90)],
                                      StylizeOptions(size=48, min_scale=24, iterations=10, strength=3.0, seed=9))]
        threads, rows = torch.get_num_threads(), {}
        for mode in ("zeros", "reflect"):
            with setting(network, "PADDING_MODE", mode):
                engine = Engine(self.weights)
                row = {"gradient": self.gradient_difference(engine, content, style)}
                for iterations in (10, 14):
                    requests = [transfer.BatchRequest(job.content, job.styles, job.options.replace(
                        iterations=iterations)) for job in jobs]
                    apart = {}
                    for count in (1, 2):
                        torch.set_num_threads(count)
                        batched = engine.stylize_batch(requests)
                        apart[count] = [engine.stylize(r.content, r.styles, r.options).image for r in requests]
                        row[f"{iterations} its, batched vs alone, {count} thread(s)"] = [
                            grey_levels(a.image, b) for a, b in zip(batched, apart[count])]
                    row[f"{iterations} its, alone 1 vs 2 threads"] = [grey_levels(a, b)
                                                                      for a, b in zip(*apart.values())]
                torch.set_num_threads(threads)
            rows[mode] = row
            print(f"  {mode}: gradient |batched - alone| / max|alone| per ReLU: "
                  + " ".join(f"{value:.0e}" for value in row["gradient"].values()), flush=True)
            for label, values in row.items():
                if label != "gradient":
                    print(f"  {mode}: {label}: " + ", ".join(f"{value:.2f}" for value in values)
                          + " grey levels (mean |difference|)", flush=True)
        self.report["rounding"] = rows

    def gradient_difference(self, engine: Engine, content: Image.Image, style: Image.Image) -> dict[str, float]:
        """Relative difference of the style-loss gradient at every ReLU between a batch of two images (the
        content and its mirror image) and the content alone."""
        names = [name for name in LAYER_INDEX
                 if name.startswith("relu") and LAYER_INDEX[name] <= LAYER_INDEX["relu5_1"]]
        encoder = engine.encoder(torch.device("cpu"), "avg", "relu5_1")
        cpu = torch.device("cpu")
        image = to_tensor(content, cpu)
        with torch.no_grad():
            targets = {name: gram(value) for name, value in encoder(to_tensor(style, cpu), STYLE_LAYERS).items()}

        def gradients(batch: torch.Tensor) -> dict[str, torch.Tensor]:
            features = encoder(batch.contiguous(memory_format=engine.memory_format).requires_grad_(True), names)
            for value in features.values():
                value.retain_grad()
            sum(style_loss(gram(features[name]), targets[name]).sum() for name in STYLE_LAYERS).backward()
            return {name: value.grad[:1] for name, value in features.items()}

        together, alone = gradients(torch.cat([image, image.flip(-1)])), gradients(image)
        return {name: float((together[name] - alone[name]).abs().max() / alone[name].abs().max())
                for name in names}

    def detail(self) -> None:
        """A four-scale schedule (like 1024 px with min_scale 128) at a size this CPU runs in minutes."""
        size, iterations, long_iterations = (128, 40, 24) if self.quick else (256, 80, 48)
        recipe = dict(size=size, iterations=iterations, min_scale=size // 8)
        old, old_s = self.run("detail", **recipe)
        new, new_s = self.run(**recipe)
        long, long_s = self.run(size=size, iterations=long_iterations, min_scale=size)
        energy = {name: high_frequency_energy(image) for name, image in (("before", old), ("after", new),
                                                                         ("long", long))}
        with before("detail"):
            old_schedule = StylizeOptions(**recipe).schedule()
        new_schedule = StylizeOptions(**recipe).schedule()
        self.report["detail"] = {
            "recipe": recipe, "energy": energy, "seconds": {"before": old_s, "after": new_s, "long": long_s},
            "finest_iterations": {"before": old_schedule[-1].iterations, "after": new_schedule[-1].iterations},
            "long_run": f"{long_iterations} iterations at {size} px only"}
        print(f"  detail at {size} px, {iterations} its over {len(new_schedule)} scales: finest scale "
              f"{old_schedule[-1].iterations} → {new_schedule[-1].iterations} its; high-frequency energy "
              f"{energy['before'] / energy['long']:.2f} → {energy['after'] / energy['long']:.2f} of the long run's "
              f"({long_iterations} its at full size, {long_s:.0f} s); time {old_s:.0f} s → {new_s:.0f} s "
              f"({new_s / old_s:.2f}×)",
              flush=True)
        contact_sheet(OUT / "quality-detail.png", [("content", self.content), ("style", self.style),
                                                   ("before: 8:4:2:1 split", old), ("after: finest >= 1/5", new),
                                                   (f"long run ({long_iterations} its, full size)", long)])

    def colour(self) -> None:
        engine, size = Engine(self.weights), self.small["size"]
        content_image, content, style = self.at(size)
        plain, _ = self.run(**self.small)
        rows = {"none": {"start": style_distance(engine, content_image, style),
                         "after": style_distance(engine, plain, style)}}
        targets = {"luminance": color.match_luminance(style, content),
                   "histogram": color.match_histogram(style, content)}
        tiles = [("content", self.content), ("style", self.style), ("no preservation", plain)]
        for mode, target in targets.items():
            old, _ = self.run("colour", **self.small, preserve_colors=mode)
            new, _ = self.run(**self.small, preserve_colors=mode)
            # Luminance mode optimises the grey picture: score the result's luminance against the grey target.
            score = (lambda image: style_distance(engine, image.convert("L").convert("RGB"), target)) \
                if mode == "luminance" else (lambda image: style_distance(engine, image, target))
            rows[mode] = {"start": score(content_image), "before": score(old), "after": score(new)}
            tiles += [(f"{mode}: before", old), (f"{mode}: after", new)]
        self.report["colour"] = rows
        none = rows["none"]
        print(f"  style loss at {size} px, no preservation: {none['start']:.3f} at the content → {none['after']:.3f} "
              f"({none['start'] / none['after']:.1f}× lower)")
        for mode in targets:
            row = rows[mode]
            print(f"  {mode}: {row['start']:.3f} at the content → before {row['before']:.3f} "
                  f"({row['start'] / row['before']:.1f}× lower), after {row['after']:.3f} "
                  f"({row['start'] / row['after']:.1f}× lower)", flush=True)
        contact_sheet(OUT / "quality-colour.png", tiles, height=150)

    def seeds(self) -> None:
        engine, size = Engine(self.weights), self.small["size"]
        style = self.at(size)[2]
        old = {seed: self.run("seeds", **self.small, seed=seed)[0] for seed in (1, 2)}
        new = {seed: self.run(**self.small, seed=seed)[0] for seed in (0, 1, 2)}
        again = self.run(**self.small, seed=1)[0]

        def apart(a: Image.Image, b: Image.Image) -> float:
            return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() / 255)

        rows = {"before_1_vs_2": apart(old[1], old[2]), "after_1_vs_2": apart(new[1], new[2]),
                "after_0_vs_1": apart(new[0], new[1]), "after_1_repeat": apart(new[1], again),
                "style_loss": {seed: style_distance(engine, image, style) for seed, image in new.items()}}
        self.report["seeds"] = rows
        losses = ", ".join(f"seed {seed} {loss:.3f}" for seed, loss in rows["style_loss"].items())
        print(f"  seeds at {size} px: mean |difference| seed 1 vs 2 before {rows['before_1_vs_2']:.4f}, after "
              f"{rows['after_1_vs_2']:.4f} (seed 0 vs 1: {rows['after_0_vs_1']:.4f}; seed 1 twice: "
              f"{rows['after_1_repeat']:.4f}); style loss {losses}", flush=True)
        contact_sheet(OUT / "quality-seeds.png", [("content", self.content), ("style", self.style),
                                                  ("before: seed 1 (= seed 2)", old[1]), ("after: seed 0", new[0]),
                                                  ("after: seed 1", new[1]), ("after: seed 2", new[2])])


def border_size(value: str) -> tuple[int, int, int]:
    """``SIZE:ITERATIONS`` (the landscape at SIZE × 3/4 SIZE) or ``WIDTHxHEIGHT:ITERATIONS`` (odd sizes)."""
    shape, iterations = value.split(":")
    width, _, height = shape.partition("x")
    return int(width), int(height) if height else int(width) * 3 // 4, int(iterations)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="half sizes and budgets (checks the script)")
    parser.add_argument("--device", default="cpu", help="where the border section runs (cpu, cuda)")
    parser.add_argument("--seeds", type=int, default=8, help="results per border case, averaged")
    parser.add_argument("--border-size", action="append", metavar="SIZE:ITERATIONS",
                        help="border cases to run (each with every preset), SIZE:ITS or WxH:ITS; default 128:16")
    parser.add_argument("--border", action="append", choices=BORDERS, help="border candidates to compare")
    parser.add_argument("--preset", action="append", choices=BORDER_PRESETS, help="border cases' styles")
    parser.add_argument("--content", choices=CONTENTS, default="landscape", help="the border cases' picture")
    parser.add_argument("--vgg-seed", type=int, default=0, help="seed of the random VGG19 (another draw of kernels)")
    parser.add_argument("--turned", action="store_true",
                        help="also run each border case on the picture turned 180° and report side_asymmetry")
    parser.add_argument("--sheet", action="append", choices=BORDER_PRESETS,
                        help="presets whose border sheets are written (default mosaic)")
    parser.add_argument("--strength", type=float, default=1.0, help="the border cases' style strength")
    parser.add_argument("--preserve-colors", default="none", choices=("none", "luminance", "histogram"),
                        help="the border cases' colour preservation")
    parser.add_argument("--name", help="name of the JSON written under benchmarks/out (default from --only)")
    args = parser.parse_args()
    sizes = [border_size(value) for value in args.border_size or ["128:16"]]
    if args.quick:
        sizes = [(96, 72, 6)]
    for name in set(BORDERS) - set(args.border or BORDERS):  # the first one left is the baseline of the times
        del BORDERS[name]
    cases = tuple((preset, *size) for size in sizes for preset in args.preset or BORDER_PRESETS)
    OUT.mkdir(parents=True, exist_ok=True)
    from nst_engine.testing import write_random_vgg19

    with tempfile.TemporaryDirectory() as scratch:
        bench = Bench(write_random_vgg19(Path(scratch) / "vgg19-random.pth", seed=args.vgg_seed), args.quick,
                      args.device, 2 if args.quick else args.seeds, cases, args.content,
                      tuple(args.sheet or ("mosaic",)), args.turned,
                      {"strength": args.strength, "preserve_colors": args.preserve_colors})
        started = time.perf_counter()
        for section in args.only or SECTIONS:
            print(f"{section} …", flush=True)
            getattr(bench, section.replace("-", "_"))()
    bench.report["wall_s"] = time.perf_counter() - started
    name = args.name or ("quality.json" if not args.only else f"quality-{'-'.join(args.only)}.json")
    (OUT / name).write_text(json.dumps(bench.report, indent=2, default=str))
    print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
