"""The ``[limits]`` section: what one request may ask of the bot, and the caps of an animation, which an admin
sets for every quality level (``max_frames = 48``) or per level (``max_frames = { fast = 24, high = 96 }``).

Torch-free and free of the rest of the bot: bot/config.py parses the section into :class:`LimitsConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nst_engine.options import QualityLevel, option_spec
from nst_engine.typed import bounded

PER_LEVEL = {"per_level": True}  # a key that takes a number for every level, or a table of numbers by level


@dataclass(frozen=True)
class AnimationCaps:
    """An animation's caps at one quality level: the frames kept and the long side of its frames."""

    level: str
    frames: int
    side: int


@dataclass(frozen=True)
class LimitsConfig:
    max_queue: int = bounded(20, 1, 10_000)
    max_jobs_per_user: int = bounded(2, 1, 1000)
    cooldown_seconds: float = bounded(20.0, 0, 86400)
    max_upload_bytes: int = bounded(10_000_000, 1000, 1_000_000_000)
    max_pixels: int = bounded(25_000_000, 256, 1_000_000_000)
    max_size: int = bounded(1024, option_spec("size").low, option_spec("size").high)
    max_iterations: int = bounded(600, option_spec("iterations").low, option_spec("iterations").high)
    max_frames: int = bounded(48, 1, 1000, **PER_LEVEL)  # frames kept of an animation (longer ones thinned evenly)
    max_animation_size: int = bounded(320, option_spec("size").low, option_spec("size").high, **PER_LEVEL)
    max_presets_per_server: int = bounded(25, 0, 1000)
    decode_workers: int = bounded(2, 1, 64)  # sandboxed image decoder processes (see docs/security.md)
    decode_seconds: float = bounded(10.0, 0.1, 600)  # CPU time allowed to decode one upload
    decode_memory_mb: int = bounded(1024, 0, 1_000_000)  # address space of one decoder process; 0 = unlimited
    decode_budget_seconds: float = bounded(30.0, 0, 86400)  # decoder CPU time per member per window; 0 = no cap
    decode_budget_window: float = bounded(600.0, 1, 86400)
    max_menus_per_user: int = bounded(5, 1, 100)  # open "Stylize image" menus kept per member
    max_in_flight: int = bounded(40, 1, 10_000)  # requests handled at once; past it one is answered "busy" at once
    # The per-level tables' entries, (key, level, cap); a level a table leaves out has the key's default above.
    by_level: tuple[tuple[str, str, int], ...] = field(default=(), metadata={"parsed": True})

    def animation_caps(self, level: str) -> AnimationCaps:
        """The frame and size caps of an animation at quality ``level`` (its side also within ``max_size``)."""
        return AnimationCaps(level, self._at("max_frames", level),
                             min(self._at("max_animation_size", level), self.max_size))

    def animation_side(self, level: QualityLevel) -> int:
        """The long side of an animation at ``level`` when the member asks for no size: what ``/help`` shows."""
        return min(level.size, self.animation_caps(level.name).side)

    def _at(self, key: str, level: str) -> int:
        return next((cap for name, named, cap in self.by_level if (name, named) == (key, level)), getattr(self, key))
