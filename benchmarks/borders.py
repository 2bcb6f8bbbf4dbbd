"""The border measures of benchmarks/quality.py: ring jumps per side and colour channel, seed-averaged and read
against the content's own, the style gradient's push on each side of a noise picture, and sheets of the four
edges enlarged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nst_engine import network  # noqa: E402
from nst_engine.images import resize_long_side  # noqa: E402
from nst_engine.losses import gram, style_loss  # noqa: E402
from nst_engine.options import StylizeOptions  # noqa: E402
from nst_engine.transfer import to_tensor  # noqa: E402

RING = 6  # pixels per ring of the border measure
STYLE_LAYERS = StylizeOptions().style_layers


def ring_jumps(image: Image.Image, offset: int = 0, ring: int = RING, part: slice = slice(None)) -> np.ndarray:
    """Signed jump of the mean colour from one ring to the next, per side (top, bottom, left, right) and colour
    channel (4 × 3, pixels in 0..1); the first ring starts ``offset`` pixels in from the border. ``part``: the
    stretch of each side measured, as a slice of a unit length (``slice(0.5, 1)``: the second half)."""
    pixels = np.asarray(image.convert("RGB"), float) / 255
    columns = pixels.transpose(1, 0, 2)

    def stretch(side: np.ndarray) -> np.ndarray:
        length = side.shape[1]
        return side[:, round((part.start or 0) * length):round((1 if part.stop is None else part.stop) * length)]

    return np.array([stretch(side[offset:offset + ring]).mean((0, 1))
                     - stretch(side[offset + ring:offset + 2 * ring]).mean((0, 1))
                     for side in (pixels, pixels[::-1], columns, columns[::-1])])


def border_jump(image: Image.Image, offset: int = 0, ring: int = RING) -> float:
    """Mean over the four sides and the colour channels of |mean of one ring − mean of the next ring|. At
    offset 0 a frame or band along the border shows up as a jump."""
    return float(np.abs(ring_jumps(image, offset, ring)).mean())


INNER_OFFSETS = range(2 * RING, 7 * RING + 1, RING)  # rings 12 to 42 px inside: the picture's own variation


def inner_jump(image: Image.Image) -> float:
    """The same jump between rings 12 to 42 px inside the border (median): the floor a border jump is
    compared with."""
    return float(np.median([border_jump(image, offset) for offset in INNER_OFFSETS]))


def systematic_jump(images: list[Image.Image]) -> tuple[float, float]:
    """Border and inside jumps of results of one job with different seeds, each signed jump averaged over the
    seeds before its size is taken. On one result, texture blobs as large as a ring move its mean as much as
    a frame does; they differ from seed to seed and cancel, a frame the network paints is in every result and
    stays. Returns (border, median inside)."""
    def averaged(offset: int) -> float:
        return float(np.abs(np.mean([ring_jumps(image, offset) for image in images], axis=0)).mean())

    return averaged(0), float(np.median([averaged(offset) for offset in INNER_OFFSETS]))


SIDES = ("top", "bottom", "left", "right")


def side_excess(images: list[Image.Image], content: Image.Image, offset: int = 0,
                part: slice = slice(None)) -> dict[str, float]:
    """Per side, the worst colour channel of |seed-averaged signed ring jump − the content's own jump| (0..1):
    a band the network paints along one side, which the pooled ring of :func:`systematic_jump` lets a lighter
    opposite side cancel. ``offset`` > 0 measures rings inside the picture: the floor of the measure. ``part``:
    only that stretch of each side (:func:`ring_jumps`)."""
    averaged = np.mean([ring_jumps(image, offset, part=part) for image in images], axis=0)
    excess = np.abs(averaged - ring_jumps(content.resize(images[0].size), offset, part=part)).max(axis=1)
    return dict(zip(SIDES, map(float, excess)))


QUARTERS = tuple(slice(k / 4, (k + 1) / 4) for k in range(4))


def quarter_excess(images: list[Image.Image], content: Image.Image, offset: int = 0) -> dict[str, float]:
    """:func:`side_excess` of each quarter of each side, the worst quarter per side: a band along part of a side
    (dark at one end, light at the other) that the whole side's mean lets cancel. A loss that holds each side's
    mean rows to the content's (``nst_engine.losses.edge_loss``) does not see this measure."""
    quarters = [side_excess(images, content, offset, part) for part in QUARTERS]
    return {side: max(quarter[side] for quarter in quarters) for side in SIDES}


def quarter_floor(images: list[Image.Image], content: Image.Image) -> float:
    """:func:`quarter_excess` between rings 12 to 42 px inside (median over rings, worst side)."""
    return float(np.median([max(quarter_excess(images, content, offset).values()) for offset in INNER_OFFSETS]))


def side_asymmetry(images: list[Image.Image], turned: list[Image.Image]) -> dict[str, float]:
    """Per side, the worst colour channel of |seed-averaged ring jump of ``images`` − that of ``turned``, results
    of the picture turned 180° (turned back before measuring)|. Each side's content then meets the network once
    on its own side and once on the opposite one: how the style renders that content (a dark sky made darker)
    cancels, and what stays is the network treating one side differently from its opposite (alignment or
    kernels, issue 23)."""
    own = np.mean([ring_jumps(image) for image in images], axis=0)
    opposite = np.mean([ring_jumps(image.rotate(180)) for image in turned], axis=0)
    return dict(zip(SIDES, map(float, np.abs(own - opposite).max(axis=1))))


def side_floor(images: list[Image.Image], content: Image.Image) -> float:
    """The same excess between rings 12 to 42 px inside (median over rings, worst side): what seed-to-seed
    texture leaves after averaging, the floor a border figure is read against."""
    return float(np.median([max(side_excess(images, content, offset).values()) for offset in INNER_OFFSETS]))


def border_push(encoder: network.VGGEncoder, style: Image.Image, size: tuple[int, int], samples: int = 6,
                flip: tuple[int, ...] = ()) -> dict[str, float]:
    """How much more the style loss pushes the outer ring of a picture than the rings inside, per side, on
    stationary noise (where every ring is alike, so any difference is the network's border): the mean gradient of
    the outer 6-px ring minus the next one's, over the spread of the same difference between rings inside
    (worst colour channel; averaged over ``samples`` noise pictures). ``flip``: kernel axes to mirror (2: up-down,
    3: left-right), to show which side a kernel's asymmetry pushes."""
    width, height = size
    cpu = torch.device("cpu")
    convs = [layer for layer in encoder.layers if isinstance(layer, torch.nn.Conv2d)]
    kept = [conv.weight.data for conv in convs]
    for conv in convs:
        conv.weight.data = conv.weight.data.flip(flip) if flip else conv.weight.data
    try:
        frame = network.frame_for(size)
        noise = (0.5 + 0.25 * torch.randn(samples, 3, height, width, generator=torch.Generator().manual_seed(0)))
        noise = noise.clamp(0, 1).requires_grad_(True)
        with torch.no_grad():
            targets = {name: gram(value) for name, value in
                       encoder(to_tensor(resize_long_side(style, max(size)), cpu), STYLE_LAYERS, frame).items()}
        features = encoder(noise, STYLE_LAYERS, frame)
        loss = sum(style_loss(gram(features[name]), targets[name].expand(samples, -1, -1)).sum()
                   for name in STYLE_LAYERS)
        (gradient,) = torch.autograd.grad(loss, noise)
    finally:
        for conv, weight in zip(convs, kept):
            conv.weight.data = weight
    gradient = gradient.mean(0)
    pushes = []
    for side in (gradient, gradient.flip(1), gradient.transpose(1, 2), gradient.transpose(1, 2).flip(1)):
        rings = side.mean(2)  # channels × rows counted from this side
        inner = torch.stack([rings[:, at:at + RING].mean(1) - rings[:, at + RING:at + 2 * RING].mean(1)
                             for at in range(2 * RING, rings.shape[1] // 2 - 2 * RING, RING)], 1)
        outer = rings[:, :RING].mean(1) - rings[:, RING:2 * RING].mean(1)
        pushes.append(float((outer.abs() / inner.std(1).clamp_min(1e-12)).max()))
    return dict(zip(SIDES, pushes))


def edge_sheet(path: Path, tiles: list[tuple[str, Image.Image]], depth: int = 24, zoom: int = 3) -> Path:
    """The outer ``depth`` px of each side of each picture, turned so the border is on top and enlarged
    ``zoom``×: one column per picture, rows top, bottom, left, right (a band shows as a stripe along the top
    of a strip)."""
    def strips(image: Image.Image) -> list[Image.Image]:
        w, h = image.size
        turned = (image.crop((0, 0, w, depth)), image.crop((0, h - depth, w, h)).rotate(180),
                  image.crop((0, 0, depth, h)).rotate(-90, expand=True),
                  image.crop((w - depth, 0, w, h)).rotate(90, expand=True))
        return [strip.resize((strip.width * zoom // 2, depth * zoom), Image.Resampling.NEAREST) for strip in turned]

    columns = [(label, strips(image.convert("RGB"))) for label, image in tiles]
    width = max(strip.width for _, column in columns for strip in column)
    row_height, label_width = depth * zoom + 6, 48
    sheet = Image.new("RGB", (label_width + (width + 8) * len(columns), 20 + row_height * 4), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for row, side in enumerate(SIDES):
        draw.text((4, 20 + row * row_height + depth * zoom // 2), side, fill="black", font=font)
    for index, (label, column) in enumerate(columns):
        x = label_width + index * (width + 8)
        draw.text((x, 4), label, fill="black", font=font)
        for row, strip in enumerate(column):
            sheet.paste(strip, (x, 20 + row * row_height))
    sheet.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path
