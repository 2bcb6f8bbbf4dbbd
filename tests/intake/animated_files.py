"""Animated files for the tests, generated: the engine's ball crossing a still scene as a GIF, the same as an
APNG or animated WebP, a GIF of hundreds of frames, and a GIF whose third frame is damaged."""

from __future__ import annotations

import io

from PIL import Image

from nst_engine.animation import Animation
from nst_engine.testing import ball_scene

GIF_TRAILER, IMAGE_DESCRIPTOR, EXTENSION = 0x3B, 0x2C, 0x21


def _saved(animation: Animation, kind: str) -> bytes:
    """Written with Pillow's own encoders, as a member's tool would (GIF's loop counts repeats, others plays)."""
    buffer = io.BytesIO()
    loop = animation.loop if kind != "GIF" else (0 if animation.loop == 0 else animation.loop - 1)
    animation.frames[0].save(buffer, kind, save_all=True, append_images=list(animation.frames[1:]),
                             duration=list(animation.durations_ms), loop=loop, **({"lossless": True} if kind == "WEBP"
                                                                                  else {}))
    return buffer.getvalue()


def ball_gif(frames: int = 4, size: tuple[int, int] = (96, 64), duration_ms: int = 80,
             loop: int = 0) -> tuple[bytes, Image.Image]:
    """The ball scene as a GIF, and its first frame as drawn."""
    animation, _ = ball_scene(size, frames, duration_ms=duration_ms, loop=loop)
    return _saved(animation, "GIF"), animation.frames[0]


def encoded_animation(kind: str, frames: int = 4, duration_ms: int = 80, loop: int = 0) -> bytes:
    """The ball scene as an APNG (``"PNG"``) or animated WebP (``"WEBP"``)."""
    animation, _ = ball_scene((64, 48), frames, duration_ms=duration_ms, loop=loop)
    return _saved(animation, kind)


def many_frame_gif(count: int, duration_ms: int = 40, size: tuple[int, int] = (32, 24)) -> bytes:
    """A GIF of ``count`` frames, each a different shade (encoders merge identical frames)."""
    frames = []
    for index in range(count):
        frame = Image.new("RGB", size, (index % 256, (index * 7) % 256, 128))
        frame.putpixel((index % size[0], (index // size[0]) % size[1]), (255, 255, 255))
        frames.append(frame)
    return _saved(Animation(tuple(frames), (duration_ms,) * count, 0), "GIF")


def damaged_frame_gif(damaged: int = 2) -> bytes:
    """A five-frame GIF whose frame ``damaged`` (0-based) has garbage for its compressed pixels; the headers, and
    so the frame count, are intact."""
    data = bytearray(many_frame_gif(5))
    for index, start in enumerate(_image_data_blocks(data)):
        if index == damaged:
            length = data[start]
            data[start + 1:start + 1 + length] = b"\xff" * length
    return bytes(data)


def _image_data_blocks(data: bytearray) -> list[int]:
    """Where each frame's first compressed data sub-block starts (its length byte), from a walk of GIF's blocks."""
    position, starts = 13, []
    if data[10] & 0x80:
        position += 3 * 2 ** ((data[10] & 7) + 1)  # the global colour table
    while position < len(data) and data[position] != GIF_TRAILER:
        kind = data[position]
        if kind == EXTENSION:
            position += 2
        else:
            assert kind == IMAGE_DESCRIPTOR, f"unexpected GIF block {kind:#x}"
            flags = data[position + 9]
            position += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # table, LZW code size
            starts.append(position)
        while data[position]:
            position += data[position] + 1
        position += 1
    return starts
