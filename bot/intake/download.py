"""Uploads turned into checked images: validated, downloaded and decoded (in the sandboxed decoder pool)
before anything is queued.

An upload is anything shaped like :class:`Upload` (a Discord attachment is), so this package needs no discord.
Every refusal is a :class:`RequestError` whose message is shown to the user as is.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from PIL import Image

from nst_engine.animation import Animation
from nst_engine.errors import ImageError
from nst_engine.images import SUPPORTED

from bot.config import Config
from bot.errors import UserError

from .decoder import DecoderPool, DecoderUnavailable, DecodeRequest, Picture, shared_pool
from .limits import AnimationCaps

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = 30.0
CHUNK = 1 << 16
# Inputs are kept at most this much larger than the biggest output, so disk use stays bounded.
INPUT_OVERSIZE = 2
MAX_ASPECT = 20  # longer than this to one, the short side vanishes at the network's coarse scales
DEFAULT_PORTS = {"https": 443, "http": 80}
MARKDOWN = re.compile(r"[\\*_~`|>]")  # what Discord would read as formatting in a file name


class RequestError(UserError):
    """A request refused at intake (options, attachments)."""


class Upload(Protocol):
    """What intake reads of an attachment (:class:`discord.Attachment` has all four)."""

    @property
    def url(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str | None: ...


async def fetch_image(session: aiohttp.ClientSession, attachment: Upload, config: Config,
                      what: str, *, requester: int | None = None, decoder: DecoderPool | None = None) -> Image.Image:
    """Check, download (streamed, byte-capped, no redirects) and decode an attachment into an RGB image.

    Decoding happens in ``decoder`` (by default the bot's shared pool), never in this process, shared fairly
    between ``requester``s (user ids). Whatever goes wrong becomes a :class:`RequestError`, so the caller always
    has a reply for the user.
    """
    picture, _ = await fetch_picture(session, attachment, config, what, None, requester=requester, decoder=decoder)
    return picture


async def fetch_picture(session: aiohttp.ClientSession, attachment: Upload, config: Config, what: str,
                        caps: AnimationCaps | None, *, requester: int | None = None,
                        decoder: DecoderPool | None = None) -> tuple[Picture, list[str]]:
    """:func:`fetch_image`, but with ``caps`` (the quality level's, ``[limits] max_frames`` and
    ``max_animation_size``) an animated GIF, APNG or WebP comes back as an :class:`Animation`, its frames at most
    ``caps.side`` long and thinned to ``caps.frames``, with notes for the member on what was cut."""
    limits = config.limits
    try:
        data = await _download_checked(session, attachment, config, what)
        request = DecodeRequest(what, limits.max_pixels, INPUT_OVERSIZE * limits.max_size, MAX_ASPECT, requester,
                                max_frames=caps.frames if caps else 1, frame_side=caps.side if caps else 0)
        picture, source_frames = await (decoder or shared_pool(limits)).decode_counted(data, request)
        return picture, thinning_notes(picture, source_frames, caps) if caps else []
    except RequestError:
        raise
    except ImageError as error:
        raise RequestError(str(error)) from None
    except DecoderUnavailable as error:
        log.error("cannot decode the %s: %s", what, error)
        raise RequestError(f"The {what} could not be processed right now; please try again in a minute.") from None
    except Exception:  # noqa: BLE001 - a bug here must still answer the user (and is logged in full)
        log.exception("unexpected failure while taking in the %s", what)
        raise RequestError(f"The {what} could not be processed; please try again.") from None


def thinning_notes(picture: Picture, source_frames: int, caps: AnimationCaps) -> list[str]:
    """What the member is told when their animation was thinned to the level's frame cap."""
    if not isinstance(picture, Animation) or source_frames <= picture.frame_count:
        return []
    return [f"animation thinned to {picture.frame_count} of its {source_frames} frames, spread evenly with the "
            f"timing kept (this bot stylises at most {caps.frames} frames at {caps.level} quality)"]


def check_attachment(attachment: Upload, config: Config, what: str) -> None:
    """The checks made before any download (declared type and size, the link's host); raises
    :class:`RequestError` with the reply for the user."""
    limits = config.limits
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type and not content_type.startswith("image/"):
        raise RequestError(f"The {what} `{_name(attachment)}` is not an image ({content_type}); "
                           f"please upload a {SUPPORTED} file.")
    if content_type == "image/svg+xml":
        raise RequestError(f"The {what} is an SVG drawing; please upload a {SUPPORTED} file.")
    if attachment.size > limits.max_upload_bytes:
        raise RequestError(f"The {what} is {_mb(attachment.size)}; the limit is {_mb(limits.max_upload_bytes)}.")
    if not allowed_origin(attachment.url, config.bot.allowed_attachment_hosts):
        raise RequestError(f"The {what} does not come from Discord's file servers, so it was not downloaded.")


def allowed_origin(url: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``url``'s scheme, host and port are allowed: a bare host in ``allowed`` means https on port 443,
    an origin (``scheme://host[:port]``) exactly that one (a test stand-in's ``http://127.0.0.1:8080``, say)."""
    wanted = _origin(url)
    return wanted is not None and any(_origin(entry if "://" in entry else f"https://{entry}") == wanted
                                      for entry in allowed)


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None for anything else or a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    return (scheme, (parts.hostname or "").lower(), port) if port and parts.hostname else None


async def _download_checked(session: aiohttp.ClientSession, attachment: Upload, config: Config,
                            what: str) -> bytes:
    check_attachment(attachment, config, what)
    return await _download(session, attachment.url, config.limits.max_upload_bytes, what)


async def _download(session: aiohttp.ClientSession, url: str, cap: int, what: str) -> bytes:
    """The body of ``url``; a redirect is refused, since only the first URL's host was checked."""
    chunks, total = [], 0
    try:
        async with session.get(url, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)) as response:
            if 300 <= response.status < 400:
                log.warning("attachment URL for the %s redirected (HTTP %d); not followed", what, response.status)
                raise RequestError(f"The {what} link pointed somewhere else, so it was not downloaded; please "
                                   "upload the file again.")
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


def _name(attachment: Upload) -> str:
    """The file name as plain text in a Discord reply: markdown characters escaped, so a name cannot format."""
    return MARKDOWN.sub(lambda match: "\\" + match.group(), attachment.filename[:60])


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
