"""nst_engine: Gatys et al. neural style transfer on VGG19 features, as a plain Python library.

Torch is imported only when the optimisation parts are used, so front ends can import the options, errors and
image helpers cheaply (the Discord bot's event-loop process never imports torch).
"""

import os

# Idle OpenMP threads sleep instead of spinning. libgomp's threads spin between torch's parallel regions, and on
# a shared CPU a spinning thread holds a core its partner needs, so every small op of an iteration waits at its
# barrier: at 128 px (bf16, 2 threads, load average ~11 on 2 cores) an iteration took 3.4 s spinning, 0.57 s
# sleeping (benchmarks/speed_floor.py --only threads). Torch reads it when first imported, hence here, before;
# an operator's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import DownloadError, ImageError, NSTError, OptionError, WeightsError  # noqa: E402
from .options import QUALITY_LEVELS, QualityLevel, StylizeOptions, option_specs  # noqa: E402

_LAZY = {name: "transfer" for name in ("stylize", "Engine", "Progress", "StylizeResult", "BatchRequest")}
_LAZY.update({"Animation": "animation", "AnimationResult": "animation"})

__all__ = ["Animation", "AnimationResult", "BatchRequest", "DownloadError", "Engine", "ImageError", "NSTError", "OptionError", "Progress",
           "QUALITY_LEVELS", "QualityLevel", "StylizeOptions", "StylizeResult", "WeightsError", "option_specs",
           "stylize"]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
