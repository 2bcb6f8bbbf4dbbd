"""Blending several styles in one request: the weights members type, and how a blend is named in messages.

``/stylize`` takes up to ``MAX_STYLES`` styles (uploads or presets); ``weights`` ("2,1") says how much each one
counts, in the order the styles were given, and ``style_scale`` how large their texture is drawn. The engine
blends the styles' Gram matrices with these weights (``StylizeOptions.style_weights``).
"""

from __future__ import annotations

import re

from nst_engine.errors import OptionError
from nst_engine.options import StylizeOptions, option_spec

from bot.errors import UserError
from bot.jobs.model import MAX_STYLES

WEIGHT = option_spec("style_weights")
SEPARATORS = re.compile(r"[\s,;:/]+")


def parse_weights(text: str | None, count: int) -> tuple[float, ...]:
    """``"2,1"`` (commas, colons or spaces between) as one weight per style; empty text means equal weights."""
    if not text or not text.strip():
        return ()
    parts = [part for part in SEPARATORS.split(text.strip()) if part]
    try:
        weights = tuple(float(part) for part in parts)
    except ValueError:
        raise UserError(f"`weights` must be numbers such as `2,1`, not `{text[:40]}`.") from None
    if len(weights) != count:
        raise UserError(f"Give one weight per style: {count} style{'s' if count != 1 else ''} but "
                        f"{len(weights)} weight{'s' if len(weights) != 1 else ''} (`{text[:40]}`).")
    if any(not WEIGHT.low <= weight <= WEIGHT.high for weight in weights):  # NaN fails this too
        raise UserError(f"Each weight must be between {WEIGHT.low:g} and {WEIGHT.high:g}.")
    if not sum(weights) > 0:
        raise UserError("At least one weight must be above 0.")
    return weights


def with_blend(options: StylizeOptions, weights: tuple[float, ...], style_scale: float | None) -> StylizeOptions:
    """``options`` with the blend's weights and style scale (``None``: the default scale)."""
    try:
        return options.replace(style_weights=weights, style_scale=options.style_scale if style_scale is None
                               else style_scale)
    except OptionError as error:
        raise UserError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from None


def blend_label(labels: list[str], weights: tuple[float, ...]) -> str:
    """How messages name the styles: ``preset *Waves*``, or ``your style image + preset *Waves* (2:1)``."""
    if len(labels) > MAX_STYLES:
        raise UserError(f"At most {MAX_STYLES} styles can be blended.")
    text = " + ".join(labels)
    return f"{text} ({':'.join(f'{weight:g}' for weight in weights)})" if weights and len(labels) > 1 else text
