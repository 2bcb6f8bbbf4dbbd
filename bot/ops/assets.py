"""``nst-bot fetch-assets``: the VGG19 weights and URL presets, downloaded into the cache and verified."""

from __future__ import annotations

import os
from pathlib import Path

from nst_engine.download import download
from nst_engine.errors import DownloadError, WeightsError
from nst_engine.images import probe_image
from nst_engine.weights import CACHE_FILE, OFFLINE_ROUTES, cache_dir, install_weights, verify_cache

from bot.config import Config

from .terminal import ProgressBar


def _progress_hook(label: str):
    bar = ProgressBar(label)

    def hook(received: int, total: int | None) -> None:
        if total:
            bar.update(received / total, f"{received / 1e6:.1f}/{total / 1e6:.1f} MB")

    return bar, hook


def fetch_weights(url: str) -> Path:
    """Download torchvision's VGG19 (SHA-256 prefix from its file name), keep the features up to conv5_1."""
    cached = cache_dir() / CACHE_FILE
    if cached.is_file():
        try:
            verify_cache()
            print(f"VGG19 weights already in the cache: {cached}")
            return cached
        except WeightsError as error:
            print(f"{error} Downloading again.")
    name = Path(url.split("?")[0]).name
    prefix = name.rsplit("-", 1)[-1].split(".")[0] if "-" in name else None
    cache_dir().mkdir(parents=True, exist_ok=True)
    # The full file goes next to the cache (same filesystem), so an interrupted run resumes it.
    full = cache_dir() / name
    bar, hook = _progress_hook("VGG19 weights")
    try:
        download(url, full, sha256_prefix=prefix, progress=hook)
    except DownloadError as error:
        raise DownloadError(f"{error} {OFFLINE_ROUTES}") from None
    finally:
        bar.close()
    target = install_weights(full, origin=url)
    full.unlink(missing_ok=True)
    print(f"VGG19 features saved to {target} ({target.stat().st_size / 1e6:.1f} MB, checksum recorded)")
    return target


def fetch_presets(config: Config) -> None:
    for preset in config.presets:
        if not preset.url or preset.path.is_file():
            continue
        bar, hook = _progress_hook(f"preset {preset.name}")
        try:
            digest = download(preset.url, preset.path, sha256=preset.sha256 or None, progress=hook)
        finally:
            bar.close()
        try:
            probe_image(preset.path, what=f"preset {preset.name}")
        except Exception:
            preset.path.unlink(missing_ok=True)
            raise
        note = "" if preset.sha256 else f" (no sha256 configured; this download's is {digest})"
        print(f"preset {preset.name}: saved to {preset.path}{note}")


def fetch_assets(config: Config) -> None:
    url = os.environ.get("NST_WEIGHTS_URL") or config.engine.weights_url
    fetch_weights(url)
    fetch_presets(config)
