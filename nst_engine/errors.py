"""Errors the engine raises with messages meant for end users (CLI, Discord, plug-ins).

Every message is one friendly sentence: front ends print ``str(error)`` as it is, never a traceback.
"""


class NSTError(Exception):
    """Base class: something the user can fix, explained in ``str(self)``."""


class OptionError(NSTError, ValueError):
    """A stylize option is unknown, of the wrong type or out of its bounds."""


class ImageError(NSTError):
    """An input image is missing, not an image, corrupt, too large or otherwise unusable."""


class WeightsError(NSTError):
    """VGG19 weights are missing, corrupt or not in torchvision's format."""


class DownloadError(NSTError):
    """An asset download failed or did not verify."""
