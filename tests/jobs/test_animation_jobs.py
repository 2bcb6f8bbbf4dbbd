"""Animated jobs in the job core (fake work queue, real SQLite and files): one job with its frames kept in one
file, counted as the work it is, never batched, refused when it cannot fit, and re-loaded for a re-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.errors import UserError
from bot.jobs.store import JobStore
from bot.work.protocol import Done, JobSpec, Progress, Ready, RunJobs, from_json, to_json
from nst_engine.animation import Animation
from nst_engine.cost import animation_cost, job_cost
from nst_engine.options import StylizeOptions
from tests.jobs.fakes import FakeFrontend, FakeWorkQueue, make_core, picture, request, until

pytestmark = pytest.mark.timeout(30)


def animation(frames: int = 4, size: tuple[int, int] = (60, 40)) -> Animation:
    pictures = tuple(Image.new("RGB", size, (40 * index, 90, 200)) for index in range(frames))
    return Animation(pictures, tuple(50 + 10 * index for index in range(frames)), 2)


async def accept(core, content, user_id: int = 1, size: int = 32):
    with core.admit(user_id):
        active = await core.accept(request(user_id, size=size), content, picture(8, 8))
        core.enqueue(active)
    return active


async def test_an_animation_is_one_job_whose_frames_and_timing_are_kept_in_one_file(tmp_path: Path) -> None:
    core = make_core(tmp_path)
    active = await accept(core, animation(4, (60, 40)), size=30)
    assert active.job.frames == 4 and active.job.animated
    content, styles = core.store.load_inputs(active.id)
    assert isinstance(content, Animation) and content.size == (30, 20)  # every frame shrunk to the output size
    assert content.durations_ms == (50, 60, 70, 80) and content.loop == 2 and len(styles) == 1
    assert core.store.content_path(active.id).is_file() and core.store.content_size(active.id) == (30, 20)
    reopened = JobStore(tmp_path / "data").get(active.id)
    assert reopened is not None and reopened.frames == 4  # the frame count is a column of the row
    still = await accept(core, picture(), user_id=2)
    assert still.job.frames == 1 and isinstance(core.store.load_inputs(still.id)[0], Image.Image)


def test_an_older_store_gains_the_frames_column_with_stills_for_its_rows(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = request()
    store.add(job)
    store.db.execute("ALTER TABLE jobs DROP COLUMN frames")
    store.close()
    assert JobStore(tmp_path).get(job.id).frames == 1


async def test_an_animation_costs_its_frames_and_runs_alone(tmp_path: Path) -> None:
    work = FakeWorkQueue()
    core = make_core(tmp_path, work, batch_size=4)
    await core.start(FakeFrontend())
    work.emit(Ready("cpu"))
    try:
        moving = await accept(core, animation(6, (32, 32)), size=32)
        still = await accept(core, picture(32, 32), user_id=2, size=32)
        options = moving.job.options
        assert core.lineup.cost(moving.id) == animation_cost(options, (32, 32), 6, [(8, 8)])
        assert core.lineup.cost(moving.id).work > 2 * job_cost(options, (32, 32), [(8, 8)]).work
        await until(lambda: work.submitted)
        assert work.submitted[0] == [moving.id]  # never batched, though the still one has the same options
        work.emit(Progress(moving.id, 3, 12, 4.0, frame=2, frames=6))
        await until(lambda: core.lineup.jobs[moving.id].frame == 2)
        assert core.lineup.jobs[moving.id].frames == 6
        Image.new("RGB", (32, 32)).save(core.store.result_path(moving.id))
        work.emit(Done(moving.id, 30, 6.0))
        await until(lambda: len(work.submitted) == 2)
        assert work.submitted[1] == [still.id]
    finally:
        await core.stop()


async def test_an_animation_over_the_memory_budget_or_the_time_limit_is_refused(tmp_path: Path) -> None:
    options = StylizeOptions(size=32, iterations=10, device="cpu")
    small, big = (animation_cost(options, (32, 32), frames, [(8, 8)]) for frames in (3, 900))
    budget = (small.peak_mb + big.peak_mb) / 2  # the frames held are what tips the long one over
    core = make_core(tmp_path, memory_budget_mb=budget, job_timeout=60.0)
    with pytest.raises(UserError, match=r"This animation \(900 frames\) could need about .* memory"):
        await accept(core, animation(900, (32, 32)))
    four = animation_cost(options, (32, 32), 4, [(8, 8)])
    core.lineup.speed.seconds_per_unit = 60.0 / four.work  # four frames would take the whole minute
    with pytest.raises(UserError, match=r"would take about .* over this bot's time limit"):
        await accept(core, animation(8, (32, 32)))
    assert not any(core.store.root.glob("jobs/*/content.png"))  # nothing was kept of either
    assert (await accept(core, animation(3, (32, 32)))).job.frames == 3


def test_a_job_spec_carries_the_frame_count_and_refuses_an_odd_one() -> None:
    spec = JobSpec("j1", "/in/content.png", ("/in/style.png",), StylizeOptions(), "/out/result.png", frames=12)
    text = to_json(RunJobs((spec,)))
    assert from_json(text).jobs[0].frames == 12
    for odd in ("0", "5000", '"12"', "true"):
        with pytest.raises(ValueError):
            from_json(text.replace('"frames": 12', f'"frames": {odd}'))
