"""Where VGG19 weights come from, and loading them safely.

Resolution order: an explicit path › ``$NST_WEIGHTS`` › the configured path › the verified cache. The cache
holds torchvision's VGG19 features up to conv5_1 with the SHA-256 recorded when it was written, checked on
every load. There is no silent fallback to random weights: without weights, one clear error says what to do.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .download import sha256_file
from .errors import WeightsError
from .layers import CACHE_LAST_INDEX, LAYER_INDEX

if TYPE_CHECKING:  # torch is imported where used, so the bot's process can read WEIGHTS_URL and cache_dir
    import torch

WEIGHTS_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
CACHE_FILE = "vgg19-features.pth"
MANIFEST_FILE = "vgg19-features.json"

NO_WEIGHTS = ("No VGG19 weights found. Run `nst-bot fetch-assets` to download them into the cache ({cache}), or "
              "point NST_WEIGHTS or `[engine] weights` in the config at a torchvision vgg19 .pth file "
              "(`nst-bot stylize` also takes --weights PATH).")
# What an admin without internet access (or behind a firewall) can do instead of the download.
LEGACY_PICKLE = b"\x80\x02"  # torch.save's format before torch 1.6 (torchvision's own VGG19 download)
LEGACY_HEAD_BYTES = 1 << 20  # its key names come before the tensors' data
OFFLINE_ROUTES = ("Without access to that address: copy a torchvision vgg19 .pth file to this machine and point "
                  "NST_WEIGHTS or `[engine] weights` in the config at it, or set `[engine] weights_url` (or "
                  "NST_WEIGHTS_URL) to a mirror you can reach.")


def cache_dir() -> Path:
    """``$NST_CACHE_DIR``, else ``$XDG_CACHE_HOME/nst-bot``, else ``~/.cache/nst-bot``."""
    if os.environ.get("NST_CACHE_DIR"):
        return Path(os.environ["NST_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nst-bot"


def resolve_weights(explicit: str | os.PathLike | None = None, configured: str | os.PathLike | None = None
                    ) -> tuple[Path, bool]:
    """The weights file to use and whether it is the cache (which is checksum-verified).

    Torch-free, so ``nst-bot run`` can check for weights before it connects to Discord.
    """
    sources = (("the weights path given", explicit), ("NST_WEIGHTS", os.environ.get("NST_WEIGHTS")),
               ("`[engine] weights` in the config", configured))
    for source, candidate in sources:
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_dir():
                raise WeightsError(f"The VGG19 weights path {str(path)!r} (from {source}) is a folder; "
                                   "name the .pth file itself.")
            if not path.is_file():
                raise WeightsError(f"The VGG19 weights file {str(path)!r} (from {source}) does not exist.")
            return path, False
    cached = cache_dir() / CACHE_FILE
    if cached.is_file():
        return cached, True
    raise WeightsError(NO_WEIGHTS.format(cache=cache_dir()))


def load_weights(explicit: str | os.PathLike | None = None, configured: str | os.PathLike | None = None
                 ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Resolve, verify and load the conv weights: {torchvision feature index: (weight, bias)}."""
    path, from_cache = resolve_weights(explicit, configured)
    from .network import features_state

    if from_cache:
        verify_cache()
    return features_state(_read_state_dict(path))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise WeightsError(f"Cannot read the weights file {str(path)!r}: {error.strerror or error}.") from None
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise WeightsError(f"{path.name} is not a readable PyTorch weights file ({type(error).__name__}); "
                           "use a torchvision vgg19 .pth file.") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path.name} does not hold a state_dict.")
    return state


def check_weights_file(path: Path) -> None:
    """Torch-free: ``path`` is a PyTorch weights file (every record intact, for the zip format) naming VGG19's
    convolutions up to conv5_1. What ``nst-bot run`` checks before it connects; the engine loads it later."""
    not_weights = f"{path.name} is not a readable PyTorch weights file ({{}}); use a torchvision vgg19 .pth file."
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
                if broken is not None:
                    raise WeightsError(not_weights.format(f"its record {broken} fails its checksum"))
                pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
                names = archive.read(pickles[0]) if pickles else b""
        else:
            with path.open("rb") as file:
                names = file.read(LEGACY_HEAD_BYTES)
            if not names.startswith(LEGACY_PICKLE):
                raise WeightsError(not_weights.format("neither a zip archive nor a pickle"))
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise WeightsError(not_weights.format(getattr(error, "strerror", None) or type(error).__name__)) from None
    convs = [index for name, index in LAYER_INDEX.items() if name.startswith("conv") and index <= CACHE_LAST_INDEX]
    missing = [index for index in convs if f"features.{index}.weight".encode() not in names]
    if missing:
        raise WeightsError(f"{path.name} holds no VGG19 weights for features.{missing[0]} (a torchvision "
                           "vgg19 .pth file has them).")


def verify_cache() -> str:
    """Check the cached file against the SHA-256 recorded when it was written; returns the digest."""
    path, manifest = cache_dir() / CACHE_FILE, cache_dir() / MANIFEST_FILE
    try:
        recorded = json.loads(manifest.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        raise WeightsError(f"The weights cache in {path.parent} has no valid {MANIFEST_FILE}; "
                           "run `nst-bot fetch-assets` again.") from None
    actual = sha256_file(path)
    if actual != recorded:
        raise WeightsError(f"The cached VGG19 weights in {path.parent} are corrupt (checksum mismatch); "
                           "run `nst-bot fetch-assets` again.")
    return actual


def install_weights(source: Path, origin: str) -> Path:
    """Copy the features up to conv5_1 of a torchvision VGG19 file into the cache, atomically, with its SHA-256."""
    import torch

    from .network import features_state

    convs = features_state(_read_state_dict(source))
    kept = {}
    for index, (weight, bias) in sorted(convs.items()):
        if index <= CACHE_LAST_INDEX:
            kept[f"features.{index}.weight"], kept[f"features.{index}.bias"] = weight.clone(), bias.clone()
    if f"features.{CACHE_LAST_INDEX}.weight" not in kept:
        raise WeightsError(f"{source.name} stops before conv5_1; it is not a complete VGG19.")
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target, tmp = directory / CACHE_FILE, directory / (CACHE_FILE + ".part")
    torch.save(kept, tmp)
    digest = sha256_file(tmp)
    manifest_tmp = directory / (MANIFEST_FILE + ".part")
    manifest_tmp.write_text(json.dumps({"sha256": digest, "origin": origin, "bytes": tmp.stat().st_size}, indent=2))
    tmp.replace(target)
    manifest_tmp.replace(directory / MANIFEST_FILE)
    return target
