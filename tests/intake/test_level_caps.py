"""An animation's caps per quality level (``[limits] max_frames`` and ``max_animation_size``, a number for every
level or a table by level): the config's two shapes and their one-line errors, and one 400-frame GIF taken in at
two levels through the real download (a loopback HTTP server), the real decoder pool and the job core's admission,
each level getting its own frame cap, size, cost and refusal."""

from __future__ import annotations

import types
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import ConfigError, parse_config
from bot.errors import UserError
from bot.intake.decoder import DecoderPool
from bot.intake.download import fetch_picture
from bot.intake.options import animation_options, build_options, capped_animation
from bot.jobs.model import Job, new_job_id
from nst_engine.animation import Animation
from nst_engine.cost import animation_cost
from tests.intake.animated_files import many_frame_gif
from tests.jobs.fakes import make_core, picture

pytestmark = pytest.mark.timeout(120)

PER_LEVEL = {"max_frames": {"fast": 4, "high": 12}, "max_animation_size": {"fast": 40}}


def limits(tmp_path: Path, **values):
    return parse_config({"storage": {"data_dir": str(tmp_path)}, "limits": values}, tmp_path).limits


def caps_of(limits, level: str) -> tuple[int, int]:
    caps = limits.animation_caps(level)
    return caps.frames, caps.side


def test_a_plain_number_caps_every_level_as_before(tmp_path: Path) -> None:
    plain = limits(tmp_path, max_frames=10, max_animation_size=100)
    assert {level: caps_of(plain, level) for level in ("fast", "standard", "high")} == \
        {"fast": (10, 100), "standard": (10, 100), "high": (10, 100)}
    assert caps_of(limits(tmp_path), "standard") == (48, 320)  # the defaults


def test_a_table_caps_each_level_and_a_level_left_out_keeps_the_default(tmp_path: Path) -> None:
    per_level = limits(tmp_path, max_size=200, **PER_LEVEL)
    assert caps_of(per_level, "fast") == (4, 40)
    assert caps_of(per_level, "standard") == (48, 200)  # neither table names it; the side within max_size
    assert caps_of(per_level, "high") == (12, 200)
    levels = parse_config({}, tmp_path).quality  # fast 256 px, standard 512, high 768
    assert [per_level.animation_side(level) for level in levels.values()] == [40, 200, 200]


@pytest.mark.parametrize("values, message", [
    ({"max_frames": {"ultra": 8}}, "[limits] max_frames names quality level 'ultra', which is not one of: fast, "
                                   "standard, high."),
    ({"max_frames": {"fast": 0}}, "[limits] max_frames.fast must be from 1 to 1000, not 0."),
    ({"max_animation_size": {"high": "big"}}, "[limits] max_animation_size.high must be a whole number, not 'big'."),
    ({"max_frames": "48"}, "[limits] max_frames must be a whole number, not '48'."),
    ({"max_queue": {"fast": 3}}, "[limits] max_queue must be a whole number, not {'fast': 3}."),
    ({"by_level": []}, "Unknown key(s) in [limits]: by_level."),
])
def test_a_bad_cap_is_one_clear_line(tmp_path: Path, values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        limits(tmp_path, **values)
    assert str(error.value) == message


@pytest.fixture
async def gif_server():
    """A loopback HTTP server with one 400-frame GIF, and a client session."""
    data = many_frame_gif(400, duration_ms=40, size=(96, 72))

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="image/gif")

    app = web.Application()
    app.add_routes([web.get("/long.gif", serve)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    upload = types.SimpleNamespace(url=f"{base}/long.gif", filename="long.gif", size=len(data),
                                   content_type="image/gif")
    async with aiohttp.ClientSession() as session:
        yield session, base, upload
    await runner.cleanup()


async def test_one_gif_at_two_levels_gets_each_levels_caps_from_download_to_admission(tmp_path: Path,
                                                                                       gif_server) -> None:
    session, base, upload = gif_server
    config = parse_config({"storage": {"data_dir": str(tmp_path / "data")}, "limits": PER_LEVEL,
                           "bot": {"allowed_attachment_hosts": [base]}}, tmp_path)
    core = make_core(tmp_path, job_timeout=60.0)
    pool = DecoderPool(workers=1, time_limit=20.0, memory_limit=1 << 30)
    await pool.start()
    taken = {}
    try:
        for user, level in enumerate(("fast", "high"), start=1):
            caps = config.limits.animation_caps(level)
            content, notes = await fetch_picture(session, upload, config, "content image", caps, decoder=pool)
            options, _ = build_options(config, level)
            options, capped = animation_options(caps, options)
            assert isinstance(content, Animation) and content.total_ms == 400 * 40
            taken[level] = (content, options, [*notes, *capped], user)
        fast, high = taken["fast"], taken["high"]
        assert (fast[0].frame_count, max(fast[0].size), fast[1].size) == (4, 40, 40)
        assert (high[0].frame_count, max(high[0].size), high[1].size) == (12, 96, 320)  # not enlarged: 96 px
        assert "at most 4 frames at fast quality" in " ".join(fast[2])
        assert "capped to 40 px for an animation at fast quality" in " ".join(fast[2])
        assert "at most 12 frames at high quality" in " ".join(high[2])

        accepted = {}
        for level, (content, options, notes, user) in taken.items():
            job = Job(new_job_id(), user, f"user{user}", 5, 6, "a style", level, options, notes)
            with core.admit(user):
                accepted[level] = await core.accept(job, content, picture(8, 8))
        assert {level: active.job.frames for level, active in accepted.items()} == {"fast": 4, "high": 12}
        for level, active in accepted.items():  # the ETA's work: the level's frames at its size
            content, options, _, _ = taken[level]
            size = core.store.content_size(active.id)
            assert core.lineup.cost(active.id) == animation_cost(options, size, content.frame_count, [(8, 8)])

        # With a speed at which the fast level's animation takes half the time limit, the high one is refused.
        core.lineup.speed.seconds_per_unit = 30.0 / core.lineup.cost(accepted["fast"].id).work
        content, options, notes, _ = high
        with core.admit(3), pytest.raises(UserError, match=r"This animation \(12 frames\) would take about"):
            await core.accept(Job(new_job_id(), 3, "user3", 5, 6, "a style", "high", options, notes), content,
                              picture(8, 8))
    finally:
        await pool.close()


def test_a_re_run_at_a_level_with_fewer_frames_is_thinned_and_capped_and_says_so(tmp_path: Path) -> None:
    config = parse_config({"storage": {"data_dir": str(tmp_path)}, "limits": PER_LEVEL}, tmp_path)
    kept = Animation(tuple(picture(96, 72) for _ in range(12)), (40,) * 12, 0)  # a high-quality job's frames
    options, _ = build_options(config, "fast", size=96)
    content, options, notes = capped_animation(config.limits.animation_caps("fast"), kept, options)
    assert content.frame_count == 4 and content.total_ms == 12 * 40 and options.size == 40
    assert notes == ["size 96 px capped to 40 px for an animation at fast quality",
                     "animation thinned to 4 of its 12 frames, spread evenly with the timing kept (this bot "
                     "stylises at most 4 frames at fast quality)"]
    same, _, none = capped_animation(config.limits.animation_caps("high"), kept, options)
    assert same is kept and none == []
