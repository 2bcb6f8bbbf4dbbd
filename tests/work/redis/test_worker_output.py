"""What a worker hands back, checked at its edges (found by mutation testing, docs/mutation-report.md): results
read from a real redis-server and decoded in the real sandboxed decoder pool, the byte cap from the value's length,
the job's size, aspect and frame count, the recipe written from the bot's own job; previews by their PNG header."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from bot.intake.decoder import DecoderPool
from bot.work.protocol import JobSpec, Progress
from bot.work.worker_output import (PNG_SIGNATURE, UnusableResult, fetch_checked_result, png_byte_cap,
                                    preview_fits, without_odd_preview)
from nst_engine.options import StylizeOptions
from nst_engine.recipe import Recipe
from tests.intake import animated_files, hostile_files
from tests.work.redis.helpers import RedisServer

pytestmark = pytest.mark.timeout(120)

# 64 rows of 64 RGBA pixels and a filter byte each, plus 64 KiB for PNG chunks, zlib and metadata.
CAP_AT_64 = 64 * (64 * 4 + 1) + (1 << 16)


def spec(frames: int = 1) -> JobSpec:
    options = StylizeOptions(size=64, iterations=4, preview_size=32, device="cpu")
    return JobSpec("job1", "content.png", ("style.png",), options, "result.png", style="waves", quality="fast",
                   frames=frames)


def png(width: int, height: int, **params: object) -> bytes:
    return hostile_files.encoded(hostile_files.noise(width, height), "PNG", **params)


@pytest.fixture
async def checked(tmp_path: Path):
    """fetch_checked_result of whatever bytes a test stores, against a real Redis and decoder pool."""
    server = RedisServer(tmp_path / "redis").start()
    redis, decoder = server.client(), DecoderPool(workers=1, time_limit=20)

    async def fetch(data: bytes | None, job: JobSpec = spec()):
        if data is not None:
            await redis.set("nst:result:run1", data)
        return await fetch_checked_result(redis, "nst:result:run1", job, decoder)

    yield fetch
    await redis.aclose()
    await decoder.close()
    server.kill()


def test_the_byte_cap_is_an_incompressible_rgba_png_of_the_long_side() -> None:
    assert png_byte_cap(64) == CAP_AT_64
    assert len(hostile_files.encoded(hostile_files.noise(64, 64, "RGBA"), "PNG", compress_level=0)) <= CAP_AT_64


async def test_a_result_over_the_cap_is_refused_from_its_length_and_one_at_it_is_decoded(checked) -> None:
    for frames in (1, 3):
        with pytest.raises(UnusableResult, match=f"larger than {frames} frame\\(s\\) of a 64-pixel PNG"):
            await checked(b"\0" * (CAP_AT_64 * frames + 1), spec(frames))
        with pytest.raises(UnusableResult, match="is not an image that can be read"):  # fetched and decoded
            await checked(b"\0" * (CAP_AT_64 * frames), spec(frames))


async def test_a_result_gone_from_redis_is_none(checked) -> None:
    assert await checked(None) is None


async def test_a_result_is_kept_within_the_jobs_size_and_aspect(checked) -> None:
    data, size = await checked(png(64, 40))
    assert size == (64, 40) and Image.open(io.BytesIO(data)).size == (64, 40)
    assert (await checked(png(80, 40)))[1] == (64, 32)  # within the job's pixels, shrunk to its long side
    with pytest.raises(UnusableResult, match="^The result is too large: 100×50 pixels"):
        await checked(png(100, 50))
    with pytest.raises(UnusableResult, match="^The result is too long and thin"):
        await checked(png(64, 2))


async def test_the_written_png_carries_the_bots_recipe_not_the_workers_text(checked) -> None:
    forged = PngImagePlugin.PngInfo()
    forged.add_text("parameters", "a worker's own words")
    recipe = Recipe(spec().options, style="waves", quality="fast").text_chunks()
    for job, result in ((spec(), png(64, 40, pnginfo=forged)), (spec(3), animated_files.encoded_animation("PNG", 3))):
        data, _ = await checked(result, job)
        with Image.open(io.BytesIO(data)) as written:
            assert written.format == "PNG" and dict(written.text) == recipe, job.frames


async def test_an_animations_result_has_exactly_its_frames(checked) -> None:
    three = animated_files.encoded_animation("PNG", frames=3)
    data, size = await checked(three, spec(3))
    with Image.open(io.BytesIO(data)) as written:
        assert (written.format, getattr(written, "n_frames", 1), written.size, size) == ("PNG", 3, (64, 48), (64, 48))
    with pytest.raises(UnusableResult, match="it has 3 frame\\(s\\), not the job's 2"):
        await checked(three, spec(2))  # thinned by the decoder to 2, but it had 3
    for frames in (2, 3):
        with pytest.raises(UnusableResult, match=f"it has 1 frame\\(s\\), not the job's {frames}"):
            await checked(png(64, 40), spec(frames))
    data, size = await checked(three, spec(1))  # a still job takes the first frame of whatever it got
    assert size == (64, 48) and getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 1


def header(width: int, height: int, length: int = 64) -> bytes:
    """The start of a PNG: its signature and IHDR chunk (what preview_fits reads), padded to ``length``."""
    start = PNG_SIGNATURE + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height) + bytes(5)
    return start + bytes(max(0, length - len(start)))


def test_a_preview_fits_when_its_header_says_a_png_within_the_preview_size() -> None:
    job = spec()  # previews of 32 px
    assert preview_fits(header(32, 32), job) and preview_fits(header(1, 32), job) and preview_fits(header(32, 1), job)
    for width, height in ((33, 20), (20, 33), (0, 20), (20, 0)):
        assert not preview_fits(header(width, height), job), (width, height)
    assert preview_fits(header(32, 20, png_byte_cap(32)), job)
    assert not preview_fits(header(32, 20, png_byte_cap(32) + 1), job)
    assert not preview_fits(b"GIF89a" + header(32, 20)[6:], job)
    assert not preview_fits(header(32, 20).replace(b"IHDR", b"IDAT"), job)


def test_an_odd_preview_is_dropped_and_the_rest_of_the_progress_kept(caplog: pytest.LogCaptureFixture) -> None:
    job = spec()
    fine = Progress("job1", 2, 4, 1.5, 0.25, header(32, 20))
    assert without_odd_preview(fine, job) is fine
    bare = Progress("job1", 2, 4, 1.5, 0.25)
    assert without_odd_preview(bare, job) is bare
    assert not caplog.records
    assert without_odd_preview(Progress("job1", 2, 4, 1.5, 0.25, header(64, 20)), job) == bare
    assert caplog.messages == ["job job1: dropped a preview that is not a PNG of the job's preview size"]
