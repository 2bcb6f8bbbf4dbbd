"""nst-bot's ComfyUI node pack: ComfyUI imports this package from ``custom_nodes/`` and reads the mappings.

The engine comes from the installed ``nst-bot`` distribution; when this folder is linked from an nst-bot
checkout that is not installed, the checkout itself provides ``nst_engine``.
"""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("nst_engine") is None:
    _CHECKOUT = Path(__file__).resolve().parents[2]
    if (_CHECKOUT / "nst_engine" / "options.py").is_file():
        sys.path.append(str(_CHECKOUT))

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
