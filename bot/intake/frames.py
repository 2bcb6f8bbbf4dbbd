"""An animated upload's side of the decoder sandbox (bot/intake/decoder.py): in the worker process, every frame
decoded within the caps and the ones over the frame cap dropped as they are decoded; in the bot, the reply's
frame count and timing checked against the request before a byte of pixels is read.
"""

from __future__ import annotations

from typing import Any, Union

from PIL import Image

from nst_engine.animated_images import load_animation, probe_animation
from nst_engine.animation import Animation
from nst_engine.errors import ImageError

Picture = Union[Image.Image, Animation]

MAX_SOURCE_FRAMES = 2000  # frames an upload may hold at all, before thinning (beyond: refused)
MAX_DURATION_MS = 60_000  # what a decoder reply may claim for one frame's display time
MAX_LOOP = 65_535  # GIF's and APNG's largest loop count
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANIMATED_SIGNATURES = (b"GIF87a", b"GIF89a", PNG_SIGNATURE)  # and RIFF....WEBP: the animated kinds


# --- in the bot: the reply, checked ------------------------------------------------------------------------

def checked_timing(reply: dict[str, Any], max_frames: int) -> int:
    """The frame count of a reply, after checking it and its timing against the request (ValueError if odd)."""
    frames, durations = reply.get("frames", 1), reply.get("durations", [0])
    source = reply.setdefault("source_frames", frames)
    if not (isinstance(frames, int) and 1 <= frames <= max_frames and isinstance(durations, list)
            and len(durations) == frames and isinstance(source, int) and source >= frames
            and all(isinstance(ms, int) and 0 <= ms <= MAX_DURATION_MS for ms in durations)
            and isinstance(reply.get("loop", 0), int) and 0 <= reply.get("loop", 0) <= MAX_LOOP):
        raise ValueError(f"the decoder process replied with {str(frames)[:20]} frames of odd timing")
    return frames


def picture(reply: dict[str, Any], pixels: bytes) -> Picture:
    size, frames = tuple(reply["size"]), reply.get("frames", 1)
    if frames == 1:
        return Image.frombytes("RGB", size, pixels)
    step = size[0] * size[1] * 3
    return Animation(tuple(Image.frombytes("RGB", size, pixels[k * step:(k + 1) * step]) for k in range(frames)),
                     tuple(reply["durations"]), reply.get("loop", 0))


# --- in the worker process -------------------------------------------------------------------------------

def frame_count(data: bytes, header: dict[str, Any]) -> int:
    """Frames in the upload, from its headers: only a GIF, PNG or WebP can be an animation (a JPEG, TIFF or BMP
    is never even probed, so it costs nothing more than before, and a multi-page TIFF or a phone's MPO stays a
    still); 1 for anything unreadable too: the still path then says what is wrong with it, as it always did."""
    if not data.startswith(ANIMATED_SIGNATURES) and data[8:12] != b"WEBP":
        return 1
    if data.startswith(PNG_SIGNATURE) and data.find(b"acTL", 0, max(0, data.find(b"IDAT"))) < 0:
        return 1  # an animated PNG names its frame count (acTL) before its first pixels: this is a still
    try:
        return probe_animation(data, max_pixels=header["max_pixels"], what=header["what"]).frames
    except ImageError:
        return 1


def frames_reply(data: bytes, header: dict[str, Any], source_frames: int) -> tuple[dict[str, Any], bytes]:
    """Every frame decoded (within the sandbox's limits), the ones over ``max_frames`` dropped as they are."""
    what, side = header["what"], min(header["frame_side"], header["long_side"])
    animation = load_animation(data, max_frames=MAX_SOURCE_FRAMES, max_pixels=header["max_pixels"],
                               keep_frames=header["max_frames"], long_side=side, what=what)
    width, height = animation.size
    if max(width, height) > header["max_aspect"] * min(width, height):
        raise ImageError(f"The {what} is too long and thin ({width}×{height}); please use one at most "
                         f"{header['max_aspect']:g} times longer than wide.")
    return ({"ok": True, "size": animation.size, "frames": animation.frame_count,
             "durations": list(animation.durations_ms), "loop": animation.loop, "source_frames": source_frames},
            b"".join(frame.tobytes() for frame in animation.frames))
