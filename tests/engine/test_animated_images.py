"""Animated files in and out: GIF, APNG and WebP keep their frames and timing, caps come before decoding, a
damaged frame is one clear error, and encoding fits its byte limit and says what it gave up."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from nst_engine.animated_images import encode_animation, load_animation, probe_animation, save_animation
from nst_engine.animation import Animation
from nst_engine.errors import ImageError
from nst_engine.testing import ball_scene


@pytest.fixture(scope="module")
def ball() -> Animation:
    animation, _ = ball_scene((48, 32), 6)
    return Animation(animation.frames, (40, 60, 80, 100, 120, 140), 3)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_frames_durations_and_loop_survive_a_round_trip(tmp_path, ball, suffix):
    path = save_animation(ball, tmp_path / f"ball{suffix}")
    back = load_animation(path)
    assert back.frame_count == 6 and back.size == (48, 32)
    assert back.durations_ms == ball.durations_ms
    assert back.loop == 3
    assert probe_animation(path).frames == 6


def test_a_gif_that_loops_forever_or_plays_once_keeps_it(tmp_path, ball):
    for plays in (0, 1):
        path = save_animation(Animation(ball.frames, ball.durations_ms, plays), tmp_path / f"l{plays}.gif")
        assert load_animation(path).loop == plays


def test_a_still_picture_is_a_one_frame_animation(tmp_path, ball):
    path = tmp_path / "still.png"
    ball.frames[0].save(path)
    still = load_animation(path)
    assert still.frame_count == 1 and not still.is_animated


def test_too_many_frames_or_pixels_are_refused_before_decoding(tmp_path, ball):
    path = save_animation(ball, tmp_path / "ball.gif")
    with pytest.raises(ImageError, match="6 frames; the limit is 5"):
        load_animation(path, max_frames=5)
    with pytest.raises(ImageError, match="over all frames"):
        load_animation(path, max_total_pixels=5 * 48 * 32)


def test_keep_frames_spreads_the_kept_frames_and_keeps_the_total_duration(tmp_path, ball):
    kept = load_animation(save_animation(ball, tmp_path / "ball.gif"), keep_frames=3)
    assert kept.frame_count == 3
    assert kept.total_ms == ball.total_ms
    assert ball.sampled(3).durations_ms == kept.durations_ms == (100, 180, 260)


def test_a_gif_with_a_damaged_frame_is_one_clear_error(tmp_path, ball):
    data = save_animation(ball, tmp_path / "ball.gif").read_bytes()
    broken = data[:-3]  # the trailer and the end of the last frame's pixels cut off: its headers still read
    with pytest.raises(ImageError) as caught:
        load_animation(broken)
    message = str(caught.value)
    assert message.startswith("Frame 6 of the animation") and "corrupt or truncated" in message and "\n" not in message


def test_encode_fits_max_bytes_and_says_what_it_reduced():
    animation, _ = ball_scene((320, 200), 10)
    roomy = encode_animation(animation, max_bytes=10_000_000)
    assert roomy.format == "GIF" and not roomy.reductions()
    assert Image.open(io.BytesIO(roomy.data)).n_frames == 10
    tight = encode_animation(animation, max_bytes=len(roomy.data) // 3, format="GIF")
    assert len(tight.data) <= len(roomy.data) // 3
    assert tight.resized and tight.size[0] < 320
    assert tight.reductions() and "scaled down from 320×200" in tight.reductions()[0]
    decoded = load_animation(tight.data)
    assert decoded.total_ms == animation.total_ms


def test_encode_drops_frames_once_the_size_is_at_its_floor():
    # Every frame a different scene, as in a stylised result where all pixels change: frames cost bytes.
    frames = tuple(ball_scene((160, 100), 1, seed=seed)[0].frames[0] for seed in range(12))
    animation = Animation(frames, (50,) * 12, 0)
    full = encode_animation(animation, max_bytes=10_000_000, format="GIF")
    cut = encode_animation(animation, max_bytes=len(full.data) // 3, format="GIF")
    assert cut.dropped_frames > 0 and not cut.resized
    assert load_animation(cut.data).total_ms == animation.total_ms
    with pytest.raises(ImageError, match="does not fit"):
        encode_animation(animation, max_bytes=100, format="GIF")


def test_the_recipe_goes_into_gif_comments_and_apng_text(tmp_path, ball):
    text = {"nst-bot": '{"format": 1}', "parameters": "style x"}
    gif = Image.open(save_animation(ball, tmp_path / "r.gif", text))
    assert b"nst-bot" in gif.info["comment"]
    png = Image.open(save_animation(ball, tmp_path / "r.png", text))
    assert png.info["nst-bot"] == '{"format": 1}'
