"""nst_engine: Gatys et al. neural style transfer on VGG19 features, as a plain Python library.

Torch is imported only when the optimisation parts are used, so front ends can import the options, errors and
image helpers cheaply (the Discord bot's event-loop process never imports torch).
"""

import os

# Idle OpenMP threads spin briefly, then sleep. Between torch's parallel regions libgomp's threads spin (300,000
# rounds by default), and on a busy shared CPU a spinning thread holds a core its partner needs, so every small op
# waits at its barrier: at 128 px an iteration took 2.4x as long spinning as sleeping (2 cores, load average 5).
# Sleeping at once costs a wake-up per region instead: a quarter more time per 128-px iteration on an idle
# machine. A short spin keeps most of both (benchmarks/README.md, "Round eight"). libgomp reads these when torch
# first loads it, hence here; an operator's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
SPIN_ROUNDS = 3000
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", str(SPIN_ROUNDS))

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
