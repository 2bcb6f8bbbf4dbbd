"""The one place a member's choices meet the quality levels and the admin caps."""

from __future__ import annotations

import math

from nst_engine.animation import Animation
from nst_engine.errors import OptionError
from nst_engine.options import StylizeOptions

from bot.config import Config

from .download import RequestError, thinning_notes
from .limits import AnimationCaps

PREVIEW_SIZE = 160
PREVIEWS_PER_JOB = 20


def build_options(config: Config, quality: str | None, *, size: int | None = None, strength: float | None = None,
                  preserve_colors: str | None = None) -> tuple[StylizeOptions, list[str]]:
    """The one place user choices meet the quality levels and admin caps.

    Returns the options and notes telling the user what was capped.
    """
    name = (quality or config.bot.default_quality).lower()
    level = config.quality.get(name)
    if level is None:
        raise RequestError(f"Unknown quality `{name}`; choose one of {', '.join(config.quality)}.")
    size_cap = min(level.size, config.limits.max_size)
    iteration_cap = min(level.iterations, config.limits.max_iterations)
    try:
        options = StylizeOptions.from_mapping({
            "size": size or level.size, "iterations": level.iterations, "strength": strength,
            "preserve_colors": preserve_colors, "device": config.engine.device,
            "preview_every": max(1, math.ceil(level.iterations / PREVIEWS_PER_JOB)), "preview_size": PREVIEW_SIZE,
        })
    except OptionError as error:
        raise RequestError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from None
    notes = []
    if options.size > size_cap:
        better = [q.name for q in config.quality.values() if min(q.size, config.limits.max_size) > size_cap]
        hint = f" (quality {better[0]} allows more)" if better else ""
        notes.append(f"size {options.size} px capped to {size_cap} px for {name} quality{hint}")
    return options.clamped(max_size=size_cap, max_iterations=iteration_cap), notes


def animation_options(caps: AnimationCaps, options: StylizeOptions) -> tuple[StylizeOptions, list[str]]:
    """The options of an animated request: its size capped to the quality level's ``[limits]
    max_animation_size`` (an animation is its frames times a still's work), with a note when that cut it."""
    if options.size <= caps.side:
        return options, []
    return options.clamped(max_size=caps.side), [f"size {options.size} px capped to {caps.side} px for an "
                                                 f"animation at {caps.level} quality"]


def capped_animation(caps: AnimationCaps, animation: Animation,
                     options: StylizeOptions) -> tuple[Animation, StylizeOptions, list[str]]:
    """A re-run's kept animation and options within the caps of its (maybe other) quality level: thinned to its
    frame cap as a new upload would be, its size capped; with the notes."""
    options, notes = animation_options(caps, options)
    if animation.frame_count <= caps.frames:
        return animation, options, notes
    thinned = animation.sampled(caps.frames)
    return thinned, options, [*notes, *thinning_notes(thinned, animation.frame_count, caps)]
