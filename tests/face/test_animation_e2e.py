"""Animated pictures end to end: the real bot and engine process against the stand-in, a generated GIF of a ball
crossing a still scene. The result comes back animated, its frames and timing kept and the still parts steadier
than frame-by-frame stylising; caps, a damaged frame, cancelling mid-animation and the re-run buttons."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from nst_engine.animated_images import load_animation
from nst_engine.options import StylizeOptions
from nst_engine.testing import ball_scene
from nst_engine.transfer import Engine
from tests.conftest import make_style, png_bytes
from tests.face.discord_standin import ALICE, BOB, CAROL, EPHEMERAL, StandinThread
from tests.face.harness import (BotProcess, again_id, callback, custom_id, result_message, status_message,
                                wait_original, wait_status)
from tests.intake.animated_files import ball_gif, damaged_frame_gif, many_frame_gif

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

FRAMES, DURATION_MS = 5, 90
# The animation caps per quality level (slow and medium, not named, keep the defaults: 48 frames, 320 px).
BOT_CONFIG = {"limits": {"max_frames": "{ fast = 6, standard = 3 }", "max_animation_size": "{ fast = 48, standard = 40 }",
                         "max_jobs_per_user": 3}}


def post_gif(standin: StandinThread, data: bytes, who: dict = ALICE, name: str = "ball.gif", *,
             upload_limit: int = 10 << 20, **options) -> str:
    content = standin.attachment(name, data, "image/gif")
    style = standin.attachment("style.png", png_bytes(make_style()))
    return standin.command("stylize", {"content": content, "style": style, **options}, who,
                           upload_limit=upload_limit)


def frames_of(standin: StandinThread, message: dict) -> tuple[list[Image.Image], list[int], str]:
    attachment = message["attachments"][0]
    image = Image.open(io.BytesIO(standin.attachment_bytes(attachment)))
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        frames.append(frame.convert("RGB"))  # decoding the frame is what sets a WebP frame's duration
        durations.append(int(frame.info.get("duration", 0)))
    return frames, durations, attachment["filename"].rsplit(".", 1)[1]


def job_of(message: dict) -> str:
    return again_id(message, "info").split(":")[2]


def still_flicker(frames, still: np.ndarray) -> float:
    """Mean absolute change between consecutive frames where the input never changes (0–255 scale)."""
    stack = np.stack([np.asarray(frame, dtype=np.float32) for frame in frames])
    return float(np.abs(np.diff(stack, axis=0))[:, still].mean())


def test_an_animated_gif_comes_back_animated_with_its_frames_timing_and_steady_still_parts(
        bot: BotProcess, standin: StandinThread, workdir: Path, vgg_weights: Path) -> None:
    data, _ = ball_gif(FRAMES, (96, 64), DURATION_MS)
    # medium: 64 px, 40 iterations. At fast's 4 iterations every frame stays close to its content, so frames
    # stylised one by one hardly flicker either (benchmarks/README.md, "Animations"): no comparison to make.
    token = post_gif(standin, data, quality="medium")
    status = status_message(standin, token)
    assert f"{FRAMES} frames" in status["content"]
    result = result_message(standin, token, timeout=180)
    frames, durations, extension = frames_of(standin, result)
    assert extension in ("gif", "webp") and len(frames) == FRAMES and durations == [DURATION_MS] * FRAMES
    assert max(frames[0].size) == 64 and f"· {FRAMES} frames" in result["content"]

    job = job_of(result)
    kept = load_animation(workdir / "data" / "jobs" / job / "result.png")  # the lossless result the bot keeps
    assert kept.frame_count == FRAMES and kept.durations_ms == (DURATION_MS,) * FRAMES
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:
        stored_options, stored_frames = db.execute("SELECT options, frames FROM jobs WHERE id = ?", (job,)).fetchone()
    assert stored_frames == FRAMES
    # The same frames stylised one by one with the same options, in this process, through the same weights.
    options = StylizeOptions.from_mapping(json.loads(stored_options))
    content = load_animation(workdir / "data" / "jobs" / job / "content.png")
    engine = Engine(str(vgg_weights))
    style = Image.open(workdir / "data" / "jobs" / job / "style.png").convert("RGB")
    one_by_one = [engine.stylize(frame, [style], options).image for frame in content.frames]
    _, still = ball_scene((96, 64), FRAMES)
    still = np.asarray(Image.fromarray(still).resize(kept.size, Image.Resampling.NEAREST))
    coherent, independent = still_flicker(kept.frames, still), still_flicker(one_by_one, still)
    assert coherent < independent, (coherent, independent)


def test_a_long_gif_is_thinned_to_the_frame_cap_and_says_so(bot: BotProcess, standin: StandinThread) -> None:
    token = post_gif(standin, many_frame_gif(400, duration_ms=40), BOB, quality="fast")
    wait_original(standin, token, "Queued at position")  # refused or cut before any engine work: here, cut
    status = status_message(standin, token)
    assert "thinned to 6 of its 400 frames" in status["content"] and "6 frames" in status["content"]
    frames, durations, _ = frames_of(standin, result_message(standin, token, timeout=180))
    assert len(frames) == 6 and sum(durations) == 400 * 40  # the timing kept over the cut


def test_the_same_long_gif_at_another_level_gets_that_levels_frame_cap(bot: BotProcess,
                                                                       standin: StandinThread) -> None:
    token = post_gif(standin, many_frame_gif(400, duration_ms=40), CAROL, quality="standard")
    wait_original(standin, token, "Queued at position")
    status = status_message(standin, token)["content"]
    assert "thinned to 3 of its 400 frames" in status and "at most 3 frames at standard quality" in status
    frames, durations, _ = frames_of(standin, result_message(standin, token, timeout=180))
    assert len(frames) == 3 and sum(durations) == 400 * 40


def test_help_lists_each_levels_animation_caps(bot: BotProcess, standin: StandinThread) -> None:
    text = callback(standin, standin.command("help"))["data"]["content"]
    assert "Animated GIF, APNG or WebP" in text
    assert "tiny test level (animations: 6 frames, 48 px)" in text
    assert "small test level (animations: 3 frames, 40 px)" in text
    assert "long enough to cancel (animations: 48 frames, 64 px)" in text  # the defaults, within the level's size


def test_an_animation_is_capped_to_the_animated_size(bot: BotProcess, standin: StandinThread) -> None:
    data, _ = ball_gif(3, (96, 64), 100)
    token = post_gif(standin, data, CAROL, quality="standard")  # standard is 64 px; its animations at most 40
    assert "capped to 40 px for an animation at standard quality" in status_message(standin, token)["content"]
    frames, _, _ = frames_of(standin, result_message(standin, token, timeout=180))
    assert max(frames[0].size) == 40 and len(frames) == 3


def test_the_result_is_reduced_to_fit_the_upload_limit_and_says_so(bot: BotProcess, standin: StandinThread) -> None:
    data, _ = ball_gif(4, (96, 64), 80)
    token = post_gif(standin, data, ALICE, quality="fast", upload_limit=2500)
    result = result_message(standin, token, timeout=180)
    assert len(standin.attachment_bytes(result["attachments"][0])) <= 2500
    assert "to fit the upload limit" in result["content"]
    frames, durations, _ = frames_of(standin, result)
    assert sum(durations) == 4 * 80  # fewer frames or fewer pixels, never a shorter animation


def test_a_gif_with_a_damaged_frame_gets_a_clear_private_reply(bot: BotProcess, standin: StandinThread) -> None:
    token = post_gif(standin, damaged_frame_gif(), BOB, name="broken.gif", quality="fast")
    reply = wait_original(standin, token, "⚠️")
    assert "Frame 3 of the content image is corrupt" in reply and "Traceback" not in reply
    assert not standin.followups(token)  # nothing was queued or posted in the channel


def test_cancel_mid_animation(bot: BotProcess, standin: StandinThread) -> None:
    data, _ = ball_gif(4, (96, 64), 80)
    token = post_gif(standin, data, CAROL, quality="slow")
    status = status_message(standin, token)
    wait_status(standin, int(status["id"]), "frame 1 of 4")
    press = standin.press(status, custom_id(status, "nst:cancel:"), CAROL)
    assert "Stopping" in callback(standin, press)["data"]["content"]
    wait_status(standin, int(status["id"]), "Cancelled by Carol after")
    assert not any("here is your image" in m["content"] for m in standin.followups(token))


def test_re_roll_and_edit_on_an_animated_result_make_animations(bot: BotProcess, standin: StandinThread) -> None:
    data, _ = ball_gif(3, (96, 64), 120)
    original = result_message(standin, post_gif(standin, data, ALICE, quality="fast"), timeout=180)
    reroll = standin.press(original, again_id(original, "reroll"), BOB)
    assert callback(standin, reroll) == {"type": 5, "data": {"flags": EPHEMERAL}}
    rerolled, durations, _ = frames_of(standin, result_message(standin, reroll, timeout=180))
    assert len(rerolled) == 3 and durations == [120] * 3
    stronger = standin.press(original, again_id(original, "stronger"), ALICE)
    strong = result_message(standin, stronger, timeout=180)
    assert "strength 2" in strong["content"] and len(frames_of(standin, strong)[0]) == 3
    form = standin.press(original, again_id(original, "edit"), CAROL)
    assert standin.wait_for(lambda: standin.modal(form), 10, "the Edit form")
    edit = standin.submit_modal(form, {"preset": "waves"}, CAROL)
    edited = result_message(standin, edit, timeout=180)
    assert "preset *Waves*" in edited["content"] and len(frames_of(standin, edited)[0]) == 3
    upscale = standin.press(original, again_id(original, "upscale"), ALICE)
    assert "Upscale works on still images" in wait_original(standin, upscale, "⚠️")
