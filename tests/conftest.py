"""Shared fixtures. Real VGG19 weights cannot be downloaded here, so tests use a seeded, randomly initialised
VGG19 saved in torchvision's format and loaded through the engine's real weights path (never a shortcut)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WEIGHTS_SEED = 0
# The stand-in and a running bot, for the end-to-end modules of every folder (tests/face, tests/intake, ...).
pytest_plugins = ("tests.face.running_bot",)


def make_content(width: int = 96, height: int = 64) -> Image.Image:
    """A smooth two-colour gradient with a bright disc and a dark bar: clear structure to keep."""
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    image = np.stack([40 + 160 * xx / width, 60 + 120 * yy / height, np.full_like(xx, 150)], axis=-1)
    image[(xx - width * 0.35) ** 2 + (yy - height * 0.5) ** 2 < (height * 0.22) ** 2] = (240, 230, 60)
    image[int(height * 0.15):int(height * 0.3), int(width * 0.6):int(width * 0.9)] = (20, 20, 40)
    return Image.fromarray(image.astype(np.uint8))


def make_style(size: int = 64, seed: int = 1) -> Image.Image:
    """Saturated red/blue checks with a different texture from the content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size, 3))
    image[..., 0] = ((xx // 4) % 2) * 230
    image[..., 2] = ((yy // 6) % 2) * 230
    image[..., 1] = rng.uniform(0, 60, (size, size))
    return Image.fromarray(image.astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def style_distance(engine, image: Image.Image, style: Image.Image) -> float:
    """How far ``image`` is from ``style`` in style: the mean normalised Gram error over relu1_1…relu5_1 of
    ``engine``'s network, in fp32 NCHW on the CPU, so it judges any result independently of how it was made."""
    import torch

    from nst_engine.losses import gram, style_loss
    from nst_engine.network import frame_for
    from nst_engine.transfer import to_tensor

    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    encoder = engine.encoder(torch.device("cpu"), "avg", layers[-1])
    frame = frame_for(image.size)  # both seen as a job of the image's size sees them
    with torch.no_grad():
        ours, theirs = (encoder(to_tensor(picture.convert("RGB"), torch.device("cpu")), layers, frame)
                        for picture in (image, style))
        return float(sum(style_loss(gram(ours[name]), gram(theirs[name])).sum() for name in layers) / len(layers))


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a seeded random VGG19 (features to conv5_1, torchvision keys); built once per test session."""
    from nst_engine.testing import write_random_vgg19

    return write_random_vgg19(tmp_path_factory.mktemp("weights") / "vgg19-random.pth", seed=WEIGHTS_SEED)


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache and no ambient NST_* settings."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NST_CACHE_DIR", str(cache))
    for name in ("NST_WEIGHTS", "NST_CONFIG", "NST_WEIGHTS_URL"):
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture()
def float64():
    """float64 by default for the test: optimiser paths compared to rounding, where fp32 would hide a difference."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture()
def content_image() -> Image.Image:
    return make_content()


@pytest.fixture()
def style_image() -> Image.Image:
    return make_style()


@pytest.fixture(scope="session", autouse=True)
def _few_threads() -> None:
    """Keep torch from oversubscribing the 2-core CI machine when tests run beside other processes."""
    os.environ.setdefault("OMP_NUM_THREADS", "2")
