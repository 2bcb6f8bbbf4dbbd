"""nst_engine: Gatys et al. neural style transfer on VGG19 features, as a plain Python library.

Torch is imported only when the optimisation parts are used, so front ends can import the options, errors and
image helpers cheaply (the Discord bot's event-loop process never imports torch).
"""

from .errors import DownloadError, ImageError, NSTError, OptionError, WeightsError
from .options import QUALITY_LEVELS, QualityLevel, StylizeOptions, option_specs

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
