"""Animated uploads through the sandboxed decoder pool (real worker processes): every frame with its timing, the
frame cap, damaged frames, the bot's checks on a reply, and stills exactly as before."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.intake.decoder import DecodeRequest, DecoderPool
from bot.intake.frames import checked_timing
from nst_engine.animation import Animation
from nst_engine.errors import ImageError
from tests.intake import hostile_files
from tests.intake.animated_files import ball_gif, damaged_frame_gif, encoded_animation, many_frame_gif

pytestmark = pytest.mark.timeout(120)

ANIMATED = DecodeRequest("content image", max_pixels=25_000_000, long_side=256, max_aspect=20, max_frames=8,
                         frame_side=64)


@pytest.fixture
async def pool():
    running = DecoderPool(workers=1, time_limit=20.0, memory_limit=1 << 30)
    await running.start()
    yield running
    await running.close()


async def test_every_frame_of_a_gif_comes_back_with_its_timing(pool: DecoderPool) -> None:
    data, source = ball_gif(frames=6, size=(96, 64), duration_ms=70, loop=0)
    animation, frames = await pool.decode_counted(data, ANIMATED)
    assert isinstance(animation, Animation) and frames == 6
    assert animation.frame_count == 6 and animation.durations_ms == (70,) * 6 and animation.loop == 0
    assert animation.size == (64, 43)  # each frame scaled to frame_side as it was decoded
    first, last = (frame.resize(source.size) for frame in (animation.frames[0], animation.frames[-1]))
    assert first.getpixel((10, 32))[0] > 150 and last.getpixel((86, 32))[0] > 150  # the ball moved across


@pytest.mark.parametrize("kind", ["PNG", "WEBP"])
async def test_apng_and_animated_webp_decode_frame_by_frame(pool: DecoderPool, kind: str) -> None:
    data = encoded_animation(kind, frames=4, duration_ms=120, loop=3)
    animation = await pool.decode(data, ANIMATED)
    assert isinstance(animation, Animation)
    assert animation.frame_count == 4 and animation.durations_ms == (120,) * 4 and animation.loop == 3


async def test_a_long_animation_is_thinned_to_the_cap_with_its_total_time_kept(pool: DecoderPool) -> None:
    data = many_frame_gif(400, duration_ms=40)
    animation, frames = await pool.decode_counted(data, ANIMATED)
    assert frames == 400 and animation.frame_count == 8
    assert animation.total_ms == 400 * 40  # each kept frame shows until the next kept one


async def test_an_animation_of_absurdly_many_frames_is_refused_from_its_headers(pool: DecoderPool) -> None:
    with pytest.raises(ImageError, match="has 400,000 frames; the limit is 2,000"):
        await pool.decode(hostile_files.many_frame_gif(400_000), ANIMATED)


async def test_a_damaged_frame_is_a_clear_refusal(pool: DecoderPool) -> None:
    with pytest.raises(ImageError, match=r"(?i)frame|corrupt|damaged") as refused:
        await pool.decode(damaged_frame_gif(), ANIMATED)
    assert "Traceback" not in str(refused.value) and "please" in str(refused.value)


async def test_stills_and_first_frames_are_as_before(pool: DecoderPool) -> None:
    photo = hostile_files.encoded(hostile_files.noise(600, 400), "JPEG")
    still = DecodeRequest("content image", max_pixels=25_000_000, long_side=256, max_aspect=20)
    assert (await pool.decode(photo, ANIMATED)).tobytes() == (await pool.decode(photo, still)).tobytes()
    data, _ = ball_gif(frames=5)
    first = await pool.decode(data, still)  # a request without frames: the first frame, as a still, as ever
    assert isinstance(first, Image.Image) and first.size == (96, 64)
    jpeg = hostile_files.encoded(hostile_files.noise(40, 30), "JPEG")
    for many_pictures in (hostile_files.many_page_tiff(200), hostile_files.multi_picture_jpeg(jpeg, jpeg)):
        # Pillow counts these as frames too, but they are pages and pictures of one photo: a still, as before.
        picture, frames = await pool.decode_counted(many_pictures, ANIMATED)
        assert isinstance(picture, Image.Image) and frames == 1


def test_the_bot_refuses_a_reply_whose_frames_or_timing_are_odd() -> None:
    good = {"frames": 3, "durations": [10, 10, 10], "loop": 0, "source_frames": 9}
    assert checked_timing(dict(good), max_frames=3) == 3
    for odd in ({"frames": 4, "durations": [10] * 4}, {"durations": [10, 10]}, {"durations": [10, -1, 10]},
                {"durations": [10, 10, 10**9]}, {"loop": -2}, {"source_frames": 2}, {"frames": "3"}):
        with pytest.raises(ValueError):
            checked_timing({**good, **odd}, max_frames=3)


def test_the_generated_files_are_what_they_claim() -> None:
    """The helpers' files are real animations (so the tests above decode what a member would upload)."""
    with Image.open(io.BytesIO(many_frame_gif(30))) as image:
        assert image.format == "GIF" and image.n_frames == 30
    with Image.open(io.BytesIO(encoded_animation("WEBP"))) as image:
        assert image.format == "WEBP" and image.is_animated
