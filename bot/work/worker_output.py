"""What a Redis worker hands back, checked before it reaches the bot's disk or Discord: any process that can
write to Redis can pose as a worker, so a result is decoded in the sandboxed decoder pool (never in the bot's
process), refused when it is larger than the job asked for (or has other than its frames), and written as the PNG
(an animated PNG for an animation) of what was decoded; a
preview is kept only when its PNG header says it is the size the job's previews are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import struct

from PIL import Image
from redis.asyncio import Redis

from nst_engine.animated_images import encode_animation
from nst_engine.animation import Animation
from nst_engine.errors import ImageError
from nst_engine.images import png_text
from nst_engine.recipe import Recipe

from bot.intake.decoder import DecoderPool, DecoderUnavailable, DecodeRequest, Picture
from bot.intake.download import MAX_ASPECT

from .protocol import JobSpec, Progress

log = logging.getLogger("bot.work.redis_queue")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SLACK = 1 << 16  # chunk framing, zlib overhead and small metadata on top of the raw pixels
MAX_ANIMATED_PNG = 1 << 40  # no cap of its own: the frames were checked against the job's size and count


class UnusableResult(Exception):
    """The worker's result is not a picture of the job's size; the message is for the admins' log."""


def png_byte_cap(long_side: int) -> int:
    """The most bytes an RGB(A) PNG with that long side can reasonably take (incompressible pixels)."""
    return long_side * (long_side * 4 + 1) + PNG_SLACK


async def fetch_checked_result(redis: Redis, key: str, spec: JobSpec,
                               decoder: DecoderPool) -> tuple[bytes, tuple[int, int]] | None:
    """The result at ``key`` as a PNG the bot wrote itself, and its size; None when the key is gone. Raises
    :class:`UnusableResult`; an outsize value is refused from its length, never fetched into the bot."""
    size = spec.options.size
    if await redis.strlen(key) > png_byte_cap(size) * spec.frames:
        raise UnusableResult(f"it is larger than {spec.frames} frame(s) of a {size}-pixel PNG")
    data = await redis.get(key)
    if data is None:
        return None
    request = DecodeRequest("result", max_pixels=size * size, long_side=size, max_aspect=MAX_ASPECT,
                            max_frames=spec.frames)
    try:
        picture, frames = await decoder.decode_counted(data, request)
    except (ImageError, DecoderUnavailable) as error:
        raise UnusableResult(str(error)) from None
    if frames > spec.frames or (spec.frames > 1 and not isinstance(picture, Animation)):
        raise UnusableResult(f"it has {frames} frame(s), not the job's {spec.frames}")
    recipe = Recipe(spec.options, style=spec.style, quality=spec.quality).text_chunks()
    return await asyncio.to_thread(_png, picture, recipe), picture.size


def without_odd_preview(progress: Progress, spec: JobSpec) -> Progress:
    """``progress``, without its preview unless that fits the job (logged: a worker should never send one)."""
    if progress.preview is None or preview_fits(progress.preview, spec):
        return progress
    log.warning("job %s: dropped a preview that is not a PNG of the job's preview size", spec.job_id)
    return dataclasses.replace(progress, preview=None)


def preview_fits(preview: bytes, spec: JobSpec) -> bool:
    """Whether ``preview`` looks like one of the job's previews: a PNG no longer than ``preview_size`` (read
    from its header; the preview is shown by Discord, never decoded here)."""
    side = spec.options.preview_size
    if len(preview) > png_byte_cap(side) or not preview.startswith(PNG_SIGNATURE) or preview[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", preview[16:24])
    return 0 < width <= side and 0 < height <= side


def _png(picture: Picture, text: dict[str, str]) -> bytes:
    """The checked pixels as a PNG (an animated one for an animation), with the recipe written from the bot's own
    job (never the worker's text)."""
    if isinstance(picture, Animation):
        return encode_animation(picture, max_bytes=MAX_ANIMATED_PNG, format="PNG", text=text).data
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", pnginfo=png_text(text))
    return buffer.getvalue()
