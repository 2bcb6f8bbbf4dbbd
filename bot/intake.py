"""Turning a Discord request into checked inputs: options clamped by quality level and admin caps, and
attachments validated and downloaded before anything is queued.

Every refusal is a :class:`RequestError` whose message is shown to the user as is.
"""

from __future__ import annotations

import asyncio
import math
from urllib.parse import urlsplit

import aiohttp
import discord
from PIL import Image

from nst_engine.errors import ImageError, OptionError
from nst_engine.images import load_image, probe_image, resize_long_side
from nst_engine.options import StylizeOptions

from .config import Config
from .errors import UserError

PREVIEW_SIZE = 160
PREVIEWS_PER_JOB = 20
DOWNLOAD_TIMEOUT = 30.0
CHUNK = 1 << 16
# Inputs are kept at most this much larger than the biggest output, so disk use stays bounded.
INPUT_OVERSIZE = 2
MAX_ASPECT = 20  # longer than this to one, the short side vanishes at the network's coarse scales


class RequestError(UserError):
    """A request refused at intake (options, attachments)."""


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


async def fetch_image(session: aiohttp.ClientSession, attachment: discord.Attachment, config: Config,
                      what: str) -> Image.Image:
    """Check, download (streamed, byte-capped) and decode an attachment into an RGB image."""
    limits = config.limits
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type and not content_type.startswith("image/"):
        raise RequestError(f"The {what} `{_name(attachment)}` is not an image ({content_type}); "
                           "please upload a PNG, JPEG, WebP or GIF.")
    if content_type == "image/svg+xml":
        raise RequestError(f"The {what} is an SVG drawing; please upload a PNG, JPEG, WebP or GIF.")
    if attachment.size > limits.max_upload_bytes:
        raise RequestError(f"The {what} is {_mb(attachment.size)}; the limit is {_mb(limits.max_upload_bytes)}.")
    host = (urlsplit(attachment.url).hostname or "").lower()
    if host not in config.bot.allowed_attachment_hosts:
        raise RequestError(f"The {what} does not come from Discord's file servers, so it was not downloaded.")
    data = await _download(session, attachment.url, limits.max_upload_bytes, what)
    try:
        info = await asyncio.to_thread(probe_image, data, max_pixels=limits.max_pixels, what=what)
        if max(info.width, info.height) > MAX_ASPECT * min(info.width, info.height):
            raise RequestError(f"The {what} is too long and thin ({info.width}×{info.height}); please use one "
                               f"at most {MAX_ASPECT} times longer than wide.")
        image = await asyncio.to_thread(load_image, data, max_pixels=limits.max_pixels, what=what)
    except ImageError as error:
        raise RequestError(str(error)) from None
    keep = INPUT_OVERSIZE * limits.max_size
    return resize_long_side(image, keep) if max(image.size) > keep else image


async def _download(session: aiohttp.ClientSession, url: str, cap: int, what: str) -> bytes:
    chunks, total = [], 0
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)) as response:
            if response.status != 200:
                raise RequestError(f"Could not download the {what} (HTTP {response.status}); please upload it again.")
            async for chunk in response.content.iter_chunked(CHUNK):
                total += len(chunk)
                if total > cap:
                    raise RequestError(f"The {what} is larger than the {_mb(cap)} limit.")
                chunks.append(chunk)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        raise RequestError(f"Could not download the {what}; please try again.") from None
    if not total:
        raise RequestError(f"The {what} is an empty file.")
    return b"".join(chunks)


def _name(attachment: discord.Attachment) -> str:
    return discord.utils.escape_markdown(attachment.filename[:60])


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
