"""An animated job through the Redis backend: the frames travel as one job to a real ``nst-bot worker`` and back,
and the bot re-checks what the worker returns (every frame, within the job's size and frame count) in its
decoder sandbox before writing the result."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.work.protocol import Done, JobSpec, Progress
from bot.work.worker_output import UnusableResult, fetch_checked_result
from bot.work.redis_link import result_key
from nst_engine.animated_images import load_animation, save_animation
from nst_engine.options import StylizeOptions
from nst_engine.testing import ball_scene
from tests.conftest import make_style
from tests.work.redis.helpers import Driver, wait_workers
from tests.work.redis.test_workers import start_workers  # noqa: F401 - the fixture these tests use

FRAMES = 4


def animated_spec(directory: Path, job_id: str = "moving") -> JobSpec:
    directory.mkdir(parents=True, exist_ok=True)
    animation, _ = ball_scene((48, 32), FRAMES, duration_ms=70, loop=2)
    save_animation(animation, directory / "content.png")  # as the bot's store keeps an animated content
    make_style(32).save(directory / "style.png")
    options = StylizeOptions(size=48, min_scale=48, iterations=4, device="cpu")
    return JobSpec(job_id, str(directory / "content.png"), (str(directory / "style.png"),), options,
                   str(directory / "result.png"), frames=FRAMES)


@pytest.mark.slow
async def test_an_animation_runs_on_a_worker_as_one_job(tmp_path: Path, queue, start_workers) -> None:  # noqa: F811
    start_workers(1)
    await wait_workers(queue, 1)
    spec = animated_spec(tmp_path / "job")
    driver = Driver(queue)
    driver.add(spec)

    await driver.run_all()

    assert [type(event) for event in driver.ends(spec.job_id)] == [Done]
    frames_seen = {event.frame for event in driver.events if isinstance(event, Progress)}
    assert frames_seen >= {1, FRAMES} and {event.frames for event in driver.events
                                           if isinstance(event, Progress)} == {FRAMES}
    result = load_animation(spec.result)
    assert result.frame_count == FRAMES and result.durations_ms == (70,) * FRAMES and result.loop == 2
    assert result.size == (48, 32)


async def test_a_worker_result_with_other_frames_than_the_job_is_refused(tmp_path: Path, queue) -> None:
    spec = animated_spec(tmp_path / "job", "forged")
    longer, _ = ball_scene((48, 32), FRAMES + 3)
    save_animation(longer, tmp_path / "longer.png")
    still, _ = ball_scene((48, 32), 1)
    still.frames[0].save(tmp_path / "still.png")
    for run, (name, refusal) in enumerate([("longer.png", f"has {FRAMES + 3} frame(s), not the job's {FRAMES}"),
                                           ("still.png", f"has 1 frame(s), not the job's {FRAMES}")]):
        await queue.redis.set(result_key(f"run-{run}"), (tmp_path / name).read_bytes())
        with pytest.raises(UnusableResult, match=re.escape(refusal)):
            await fetch_checked_result(queue.redis, result_key(f"run-{run}"), spec, queue.decoder)
