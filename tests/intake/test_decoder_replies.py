"""The bot trusts nothing a decoder process says unchecked (docs/security.md): a worker replaying a picture larger
than the request allows is refused and killed before the bot reads its pixels. The worker here is a real process
that answers as a compromised decoder would (it is handed to the real pool in place of a started one)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from bot.intake.decoder import DecodeRequest, DecoderPool, DecoderWorker
from nst_engine.errors import ImageError

pytestmark = pytest.mark.timeout(60)

LIAR = """
import json, sys
print("ready", flush=True)
header = json.loads(sys.stdin.buffer.readline())
sys.stdin.buffer.read(header["bytes"])
width, height = {size}
sys.stdout.buffer.write(json.dumps({{"ok": True, "size": [width, height], "cpu_s": 0.0}}).encode() + b"\\n")
sys.stdout.buffer.write(b"\\x80" * (width * height * 3))
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""


async def lying_worker(size: tuple[int, int]) -> DecoderWorker:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", LIAR.format(size=size),
                                                   stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert (await process.stdout.readline()).strip() == b"ready"
    return DecoderWorker(process)


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (0, 10), (10, -4)])
async def test_a_reply_outside_the_requested_size_is_refused_and_the_worker_killed(size) -> None:
    pool = DecoderPool(workers=1, time_limit=10)
    worker = await lying_worker(size)
    pool._idle.append(worker)
    try:
        with pytest.raises(ImageError, match="could not be decoded within this bot's memory and safety limits"):
            await pool.decode(b"any bytes", DecodeRequest("content image", 25_000_000, 256, 20))
        assert worker.process.returncode is not None
    finally:
        await pool.close()


async def test_a_reply_within_the_requested_size_is_taken() -> None:
    pool = DecoderPool(workers=1, time_limit=10)
    pool._idle.append(await lying_worker((256, 100)))
    try:
        image = await pool.decode(b"any bytes", DecodeRequest("content image", 25_000_000, 256, 20))
        assert image.size == (256, 100) and image.getpixel((0, 0)) == (128, 128, 128)
    finally:
        await pool.close()
