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
