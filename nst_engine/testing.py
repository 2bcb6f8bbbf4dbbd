"""Seeded random VGG19 weights in torchvision's format, for tests and benchmarks on machines without the real
file. They are only ever used when a caller writes them explicitly; the engine never falls back to them."""

from __future__ import annotations

from pathlib import Path

import torch

from .layers import CACHE_LAST_INDEX


def write_random_vgg19(path: str | Path, seed: int = 0, *, full_model: bool = False) -> Path:
    """Save torchvision's randomly initialised VGG19 (seeded) as a ``state_dict`` file.

    ``full_model`` keeps the classifier too (548 MB, like the real download); otherwise the features up to
    conv5_1 are kept, as in the cache.
    """
    from torchvision.models import vgg19

    torch.manual_seed(seed)
    model = vgg19(weights=None)
    state = model.state_dict()
    if not full_model:
        state = {key: value for key, value in state.items()
                 if key.startswith("features.") and int(key.split(".")[1]) <= CACHE_LAST_INDEX}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def ball_scene(size: tuple[int, int] = (96, 64), frames: int = 8, *, radius: int | None = None,
               duration_ms: int = 80, loop: int = 0, seed: int = 0):
    """A ball crossing a still textured scene, left to right: the animation tests and benchmarks stylise.

    Returns the :class:`~nst_engine.animation.Animation` and a boolean H×W numpy mask of the pixels that no
    frame's ball ever covers (the still part, where flicker is measured)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    from .animation import Animation

    width, height = size
    radius = radius or max(3, height // 6)
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    texture = Image.fromarray(noise, "RGB").resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    scene = ImageDraw.Draw(texture)
    for k in range(0, width, max(8, width // 6)):  # still stripes and boxes: edges for the style to grip
        scene.rectangle((k, height * 3 // 4, k + width // 12, height - 1), fill=(40, 90, 200))
    scene.line((0, height // 5, width, height // 3), fill=(250, 240, 60), width=3)
    still = np.ones((height, width), bool)
    pictures = []
    for index in range(frames):
        x = round(radius + (width - 2 * radius - 1) * index / max(1, frames - 1))
        y = height // 2
        frame = texture.copy()
        ImageDraw.Draw(frame).ellipse((x - radius, y - radius, x + radius, y + radius), fill=(220, 30, 30))
        pictures.append(frame)
        rows, columns = np.ogrid[:height, :width]
        still &= (columns - x) ** 2 + (rows - y) ** 2 > (radius + 2) ** 2
    return Animation(tuple(pictures), (duration_ms,) * frames, loop), still
