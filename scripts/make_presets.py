"""Generate the built-in preset style images (bot/assets/presets/*.png).

They are procedural, so nst-bot ships styles it may redistribute freely; admins add real paintings through
config ([[presets]]) or `/preset add`. Deterministic: rerunning gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 384
OUT = Path(__file__).resolve().parent.parent / "bot" / "assets" / "presets"


def mosaic(rng: np.random.Generator) -> Image.Image:
    """Voronoi tiles in warm and cool glazes with dark grout."""
    points = rng.uniform(0, SIZE, (140, 2))
    palette = rng.choice(np.array([[196, 64, 44], [232, 176, 60], [40, 92, 160], [32, 140, 120], [236, 224, 200],
                                   [120, 40, 90]]), len(points))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    dist = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    order = np.sort(dist, axis=-1)
    image = palette[np.argmin(dist, axis=-1)].astype(float)
    edge = (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 3
    image[edge] = [30, 24, 20]
    return Image.fromarray(image.astype(np.uint8))


def waves(rng: np.random.Generator) -> Image.Image:
    """Curling blue bands with white crests."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    phase = 14 * yy + 2.5 * np.sin(6 * xx + 3 * yy) + 1.2 * np.sin(17 * xx * yy)
    band = (np.sin(phase * 2) + 1) / 2
    deep, light = np.array([16, 40, 96]), np.array([120, 170, 210])
    image = deep + (light - deep) * band[..., None]
    image[band > 0.93] = [245, 245, 235]
    return Image.fromarray(image.astype(np.uint8)).filter(ImageFilter.SMOOTH_MORE)


def embers(rng: np.random.Generator) -> Image.Image:
    """Glowing orange sparks on charcoal, from blurred multi-scale noise."""
    field = np.zeros((SIZE, SIZE))
    for cells, weight in ((6, 1.0), (24, 0.5), (96, 0.25)):
        noise = Image.fromarray((rng.uniform(0, 255, (cells, cells))).astype(np.uint8)).resize((SIZE, SIZE),
                                                                                             Image.Resampling.BICUBIC)
        field += weight * np.asarray(noise, float) / 255
    field = (field - field.min()) / (field.max() - field.min())
    heat = np.clip((field - 0.45) * 2.5, 0, 1)[..., None]
    image = np.array([28, 22, 24]) * (1 - heat) + np.array([255, 140, 30]) * heat
    image += (heat ** 4) * np.array([0, 90, 120])
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def cubist(rng: np.random.Generator) -> Image.Image:
    """Overlapping angular shards in ochre, grey and umber with dark outlines."""
    image = Image.new("RGB", (SIZE, SIZE), (150, 130, 100))
    draw = ImageDraw.Draw(image)
    colours = [(178, 142, 80), (96, 86, 78), (200, 190, 160), (120, 70, 40), (60, 70, 80), (220, 200, 120)]
    for _ in range(90):
        centre = rng.uniform(0, SIZE, 2)
        points = [tuple(centre + rng.uniform(-70, 70, 2)) for _ in range(int(rng.integers(3, 5)))]
        draw.polygon(points, fill=colours[int(rng.integers(len(colours)))], outline=(30, 26, 24), width=2)
    return image


def pointillist(rng: np.random.Generator) -> Image.Image:
    """Dense dots of pure colour on cream, as in Seurat's technique."""
    image = Image.new("RGB", (SIZE, SIZE), (238, 230, 205))
    draw = ImageDraw.Draw(image)
    colours = [(40, 90, 200), (250, 200, 40), (230, 80, 50), (60, 160, 80), (150, 60, 160), (255, 255, 255)]
    for _ in range(5000):
        x, y = rng.uniform(0, SIZE, 2)
        r = rng.uniform(2, 4)
        band = int((y / SIZE * 3 + rng.normal(0, 0.5))) % len(colours)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colours[band])
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, make in enumerate((mosaic, waves, embers, cubist, pointillist)):
        make(np.random.default_rng(seed)).save(OUT / f"{make.__name__}.png", optimize=True)
        print(OUT / f"{make.__name__}.png")


if __name__ == "__main__":
    main()
