"""Animated pictures as the engine sees them: frames of one size with their timing, and a stylised result.

Torch-free, so the bot's intake and job core can build, check and cut animations without loading the engine.

API (the signatures other parts build on)::

    Animation(frames: tuple[PIL.Image.Image, ...], durations_ms: tuple[int, ...], loop: int = 0)
        frames are RGB, all one size; durations_ms one per frame; loop is how many times it plays (0: forever)
        .size -> (width, height)   .frame_count   .is_animated   .total_ms
        .sampled(max_frames) -> Animation        at most max_frames frames spread evenly, total duration kept
        .resized(long_side) -> Animation         every frame scaled down (never up) to that long side

    Engine.stylize_animation(animation, styles, options=None, *, on_progress=None, should_stop=None)
        -> AnimationResult                        (nst_engine/transfer.py; the work is in nst_engine/temporal.py)
    AnimationResult(animation, losses: tuple[dict[str, float], ...], iterations, cancelled, elapsed, device)
        .animation holds the frames stylised so far (all of them unless cancelled), with the input's timing

Files: nst_engine/animated_images.py (``load_animation``, ``probe_animation``, ``encode_animation``,
``save_animation``). Cost: nst_engine/cost.py (``animation_cost``, ``later_frame_iterations``). The temporal
coherence option is ``StylizeOptions.temporal_weight`` (0: every frame stylised on its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from .errors import ImageError
from .images import resize_long_side

MIN_DURATION_MS = 20  # browsers play shorter GIF frame delays at 100 ms; 20 ms is the shortest they honour


@dataclass(frozen=True)
class Animation:
    """Frames of one size with each one's display time; ``loop`` is the number of plays, 0 for forever."""

    frames: tuple[Image.Image, ...]
    durations_ms: tuple[int, ...]
    loop: int = 0

    def __post_init__(self) -> None:
        if not self.frames:
            raise ImageError("The animation has no frames.")
        if len(self.durations_ms) != len(self.frames):
            raise ImageError(f"The animation has {len(self.frames)} frames but {len(self.durations_ms)} durations.")
        size = self.frames[0].size
        if any(frame.size != size or frame.mode != "RGB" for frame in self.frames):
            raise ImageError("Every frame of an animation must be an RGB picture of one size.")
        if self.loop < 0 or any(duration < 0 for duration in self.durations_ms):
            raise ImageError("An animation's loop count and frame durations cannot be negative.")

    @classmethod
    def still(cls, image: Image.Image) -> "Animation":
        """A one-frame animation of a still picture."""
        return cls((image,), (0,), 0)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def is_animated(self) -> bool:
        return len(self.frames) > 1

    @property
    def total_ms(self) -> int:
        return sum(self.durations_ms)

    def sampled(self, max_frames: int) -> "Animation":
        """At most ``max_frames`` frames spread evenly over the animation; each kept frame shows until the next
        kept one, so the total duration (and so the speed of the motion) stays the same."""
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        count = len(self.frames)
        if count <= max_frames:
            return self
        keep = [round(k * count / max_frames) for k in range(max_frames)]
        ends = keep[1:] + [count]
        durations = tuple(sum(self.durations_ms[start:end]) for start, end in zip(keep, ends))
        return Animation(tuple(self.frames[k] for k in keep), durations, self.loop)

    def resized(self, long_side: int) -> "Animation":
        """Every frame scaled down to ``long_side`` (never up); the timing is unchanged."""
        if max(self.size) <= long_side:
            return self
        return Animation(tuple(resize_long_side(frame, long_side) for frame in self.frames), self.durations_ms,
                         self.loop)


@dataclass
class AnimationResult:
    """The stylised animation with the input's timing, and per frame the losses it ended with.

    ``iterations`` counts over all frames; a cancelled run holds the frames finished before the stop."""

    animation: Animation | None
    losses: tuple[dict[str, float], ...] = ()
    iterations: int = 0
    cancelled: bool = False
    elapsed: float = 0.0
    device: str = "cpu"
    frame_times: tuple[float, ...] = field(default=())
