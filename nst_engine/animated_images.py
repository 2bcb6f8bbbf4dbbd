"""Animated pictures in and out: GIF, APNG and animated WebP, with the same policy as :mod:`.images`.

Torch-free. Reading keeps images.py's rules (format allow-list, PNG chunk cap, the pixel cap from the header
before any decode) and adds the frames: their count and frames × pixels are checked from the headers before a
frame is decoded, every frame is composited by Pillow (GIF disposal, APNG blending, WebP) and turned into
upright RGB on white, and a frame that fails to decode is an :class:`ImageError` naming the frame.

API::

    probe_animation(source, *, max_pixels=DEFAULT_MAX_PIXELS, what="animation") -> AnimationInfo
        format, width, height, frames: counted from the headers, no frame decoded
    load_animation(source, *, max_frames=DEFAULT_MAX_FRAMES, max_pixels=DEFAULT_MAX_PIXELS,
                   max_total_pixels=DEFAULT_MAX_TOTAL_PIXELS, keep_frames=None, long_side=None,
                   what="animation") -> Animation
        a still picture (or a one-frame GIF) gives a one-frame Animation: ``.is_animated`` is False;
        ``keep_frames`` keeps at most that many frames spread evenly (Animation.sampled), dropping the others as
        they are decoded; ``long_side`` scales each frame down as it is decoded
    encode_animation(animation, *, max_bytes, format=None, text=None) -> EncodedAnimation
        format None: GIF with one shared palette when it fits, else animated WebP; "GIF", "WEBP" or "PNG"
        (APNG) to insist; shrinks the frames, then drops frames (total duration kept) until it fits
    save_animation(animation, path, text=None) -> Path      by extension: .gif, .webp, .png (APNG)

``Animation.loop`` counts plays (0: forever). A GIF's loop extension counts repeats after the first play, so
a GIF without one plays once (loop 1) and its count N reads as N + 1 plays; APNG and WebP store plays.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from PIL import Image, ImageOps

from .animation import Animation
from .errors import ImageError
from .images import DEFAULT_MAX_PIXELS, ImageSource, _check_header, _open, png_text, resize_long_side, to_rgb

DEFAULT_MAX_FRAMES = 1000
DEFAULT_MAX_TOTAL_PIXELS = 400_000_000  # frames × pixels decoded: about 1.2 GB of RGB if kept at full size
ANIMATED_FORMATS = {"GIF": "gif", "WEBP": "webp", "PNG": "png"}
SUFFIX_FORMATS = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG"}
# encode_animation's ladder: WebP qualities tried at each size, each size's shrink, the smallest long side
# tried before frames are dropped, and the share of frames each frame step keeps.
WEBP_QUALITIES = (90, 75, 60)
SHRINK = 0.8
MIN_LONG_SIDE = 160  # below this a result is too small to be worth it: frames go first
KEEP_FRAMES = 0.7
PALETTE_SAMPLE_FRAMES = 16  # frames whose pixels choose the GIF's shared palette


@dataclass(frozen=True)
class AnimationInfo:
    format: str
    width: int
    height: int
    frames: int


@dataclass(frozen=True)
class EncodedAnimation:
    """An encoded result and what was given up to fit: ``source_size``/``source_frames`` are the animation's,
    ``size``/``frames`` what the file holds."""

    data: bytes
    format: str
    size: tuple[int, int]
    frames: int
    source_size: tuple[int, int]
    source_frames: int

    @property
    def extension(self) -> str:
        return ANIMATED_FORMATS[self.format]

    @property
    def resized(self) -> bool:
        return self.size != self.source_size

    @property
    def dropped_frames(self) -> int:
        return self.source_frames - self.frames

    def reductions(self) -> list[str]:
        """What was reduced, in words for a reply (empty when nothing was)."""
        said = []
        if self.resized:
            said.append(f"scaled down from {self.source_size[0]}×{self.source_size[1]} to "
                        f"{self.size[0]}×{self.size[1]}")
        if self.dropped_frames:
            said.append(f"cut from {self.source_frames} to {self.frames} frames (same total duration)")
        return said


def probe_animation(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                    what: str = "animation") -> AnimationInfo:
    """Format, size and frame count from the headers; no frame is decoded."""
    with _open(source, what, max_pixels) as image:
        info = _check_header(image, max_pixels, what)
        return AnimationInfo(info.format, info.width, info.height, _frame_count(image, what))


def load_animation(source: ImageSource, *, max_frames: int = DEFAULT_MAX_FRAMES,
                   max_pixels: int = DEFAULT_MAX_PIXELS, max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS,
                   keep_frames: int | None = None, long_side: int | None = None,
                   what: str = "animation") -> Animation:
    """Decode every frame of ``source`` (see the module docstring), or raise :class:`ImageError` saying why not."""
    with _open(source, what, max_pixels) as image:
        info = _check_header(image, max_pixels, what)
        count = _frame_count(image, what)
        if count > max_frames:
            raise ImageError(f"The {what} has {count:,} frames; the limit is {max_frames:,}.")
        if count * info.width * info.height > max_total_pixels:
            raise ImageError(f"The {what} is too large: {count:,} frames of {info.width}×{info.height} pixels; "
                             f"the limit is {max_total_pixels / 1e6:g} megapixels over all frames.")
        keep = set(range(count)) if not keep_frames or keep_frames >= count else \
            {round(k * count / keep_frames) for k in range(keep_frames)}
        frames, durations = [], []
        for index in range(count):
            picture, duration = _decode_frame(image, index, what, index in keep, long_side)
            if picture is not None:
                frames.append(picture)
                durations.append(duration)
            elif durations:
                durations[-1] += duration  # a dropped frame's time goes to the kept one before it
        loop = _plays(image) if count > 1 else 0
    size = frames[0].size
    frames = [frame if frame.size == size else frame.resize(size, Image.Resampling.LANCZOS) for frame in frames]
    return Animation(tuple(frames), tuple(durations), loop)


def _frame_count(image: Image.Image, what: str) -> int:
    """Frames of a GIF, PNG (APNG) or WebP; other formats' extra pages (an MPO's depth map, a TIFF's pages)
    are not animation frames, so they count as one picture."""
    if image.format not in ANIMATED_FORMATS:
        return 1
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception:  # noqa: BLE001 - walking the frame headers failed: a damaged file
        raise ImageError(f"The {what} could not be read: its frame headers are damaged.") from None


def _decode_frame(image: Image.Image, index: int, what: str, keep: bool,
                  long_side: int | None) -> tuple[Image.Image | None, int]:
    """Frame ``index`` as upright RGB (None when it is not kept; later frames still need it decoded, since
    each is drawn over the one before) and its duration in ms."""
    try:
        image.seek(index)
        image.load()
        duration = max(0, round(float(image.info.get("duration", 0) or 0)))
        if not keep:
            return None, duration
        picture = to_rgb(ImageOps.exif_transpose(image.copy()))
    except MemoryError:
        raise ImageError(f"The {what} needs more memory to decode than this bot allows.") from None
    except Exception:  # noqa: BLE001 - any failure inside a decoder means a damaged or hostile file
        raise ImageError(f"Frame {index + 1} of the {what} is corrupt or truncated and could not be decoded; "
                         "please export it again.") from None
    if long_side is not None and max(picture.size) > long_side:
        picture = resize_long_side(picture, long_side)
    return picture, duration


def _plays(image: Image.Image) -> int:
    """How many times the file says it plays (0: forever); see the module docstring for GIF's count."""
    loop = image.info.get("loop")
    if image.format == "GIF":
        return 1 if loop is None else (0 if loop == 0 else int(loop) + 1)
    return int(loop or 0)


def encode_animation(animation: Animation, *, max_bytes: int, format: str | None = None,
                     text: Mapping[str, str] | None = None) -> EncodedAnimation:
    """The animation as a file of at most ``max_bytes`` (see the module docstring for the choices)."""
    formats = ("GIF", "WEBP") if format is None else (format.upper(),)
    if any(name not in ANIMATED_FORMATS for name in formats):
        raise ImageError(f"Cannot encode an animation as {format!r}: use GIF, WEBP or PNG.")
    long_side, frame_count = max(animation.size), animation.frame_count
    while True:
        current = animation.sampled(frame_count).resized(long_side)
        for name in formats:
            for params in _quality_steps(name):
                data = _encode(current, name, text, **params)
                if len(data) <= max_bytes:
                    return EncodedAnimation(data, name, current.size, current.frame_count, animation.size,
                                            animation.frame_count)
        if long_side > MIN_LONG_SIDE:  # shrink by the overshoot, at least by SHRINK
            long_side = max(MIN_LONG_SIDE, math.floor(long_side * min(SHRINK, math.sqrt(max_bytes / len(data)))))
        elif frame_count > 2:
            frame_count = max(2, math.floor(frame_count * KEEP_FRAMES))
        else:
            raise ImageError(f"The animated result does not fit in {max_bytes / 1e6:.1f} MB even at "
                             f"{current.size[0]}×{current.size[1]} with {current.frame_count} frames.")


def _quality_steps(name: str) -> list[dict]:
    return [{"quality": quality} for quality in WEBP_QUALITIES] if name == "WEBP" else [{}]


def _encode(animation: Animation, name: str, text: Mapping[str, str] | None, **params: object) -> bytes:
    buffer = io.BytesIO()
    _write(animation, buffer, name, text, **params)
    return buffer.getvalue()


def _write(animation: Animation, target, name: str, text: Mapping[str, str] | None, **params: object) -> None:
    """Write ``animation`` as ``name``; the recipe ``text`` goes into a GIF comment or APNG text chunks."""
    frames = list(animation.frames)
    loop = _stored_loop(animation, name)
    timing = {"duration": list(animation.durations_ms) if animation.is_animated else animation.durations_ms[0]}
    if name == "GIF":
        frames = _shared_palette(frames)
        if text:
            params["comment"] = "\n".join(f"{key}: {value}" for key, value in text.items()).encode()
    elif name == "WEBP":
        params.setdefault("method", 4)
    elif text:
        params["pnginfo"] = png_text(text)
    if loop is not None:
        params["loop"] = loop
    frames[0].save(target, name, save_all=True, append_images=frames[1:], **timing, **params)


def _stored_loop(animation: Animation, name: str) -> int | None:
    """The loop count as the format stores it (None: a GIF that plays once has no loop extension)."""
    if name != "GIF":
        return animation.loop
    return None if animation.loop == 1 else max(0, animation.loop - 1)


def _shared_palette(frames: list[Image.Image]) -> list[Image.Image]:
    """Every frame in one 256-colour palette chosen from a sample of all frames, without dithering: dither
    patterns change from frame to frame and would shimmer where the picture stands still."""
    step = max(1, len(frames) // PALETTE_SAMPLE_FRAMES)
    sample = frames[::step]
    width, height = sample[0].size
    mosaic = Image.new("RGB", (width, height * len(sample)))
    for row, frame in enumerate(sample):
        mosaic.paste(frame, (0, row * height))
    palette = mosaic.quantize(256, method=Image.Quantize.MEDIANCUT)
    return [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]


def save_animation(animation: Animation, path: str | Path, text: Mapping[str, str] | None = None) -> Path:
    """Save by extension: .gif (shared palette), .webp (animated, lossless-looking quality 90), .png (APNG)."""
    path = Path(path)
    name = SUFFIX_FORMATS.get(path.suffix.lower())
    if name is None:
        raise ImageError(f"Cannot write the animation {path.name!r}: use a .gif, .webp or .png file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as stream:
        _write(animation, stream, name, text, **({"quality": WEBP_QUALITIES[0]} if name == "WEBP" else {}))
    tmp.replace(path)
    return path
