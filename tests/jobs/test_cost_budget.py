"""Jobs bounded by what they will cost (nst_engine.cost) in the job core: admission refuses a job that could
need more memory than the engines may use, before anything is downloaded; the dispatcher fills a batch up to the
memory budget, not only to the batch size; the ETA counts a job's work as the model does (its styles too)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest

from bot.errors import UserError
from bot.jobs.batching import choose_batch
from bot.jobs.core import JobCore
from bot.work.protocol import Done, Ready
from nst_engine.cost import FIXED_MB, JobCost, worst_case_cost
from nst_engine.options import StylizeOptions
from tests.jobs.fakes import FakeFrontend, FakeWorkQueue, accepted, make_core, picture, until

pytestmark = pytest.mark.timeout(30)

LARGE = StylizeOptions(size=1024, iterations=120, style_scale=4.0)


@asynccontextmanager
async def started(tmp_path: Path, work: FakeWorkQueue, **settings) -> AsyncIterator[JobCore]:
    core = make_core(tmp_path, work, **settings)
    await core.start(FakeFrontend())
    work.emit(Ready("cpu"))
    try:
        yield core
    finally:
        await core.stop()


def test_a_batch_takes_jobs_while_their_predicted_peak_fits_the_budget() -> None:
    costs = {"a": JobCost(1000, 800, 1), "b": JobCost(1300, 800, 1), "c": JobCost(1000, 800, 1),
             "d": JobCost(1000, 800, 1)}
    same_key = {job_id: "k" for job_id in costs}.get
    assert choose_batch(list("abcd"), 4, same_key) == list("abcd")  # no budget: the batch size alone
    assert choose_batch(list("abcd"), 4, same_key, costs.get, 1450) == ["a", "c", "d"]  # b's 500 MB does not fit
    assert choose_batch(list("abcd"), 4, same_key, costs.get, 1250) == ["a", "c"]
    assert choose_batch(list("abcd"), 2, same_key, costs.get, 10_000) == ["a", "b"]  # and never over the size
    assert choose_batch(list("bacd"), 4, same_key, costs.get, 900) == ["b"]  # the first job goes alone


async def test_admission_refuses_a_job_over_the_budget_whatever_its_images(tmp_path: Path) -> None:
    budget = worst_case_cost(LARGE.replace(size=512), 1).peak_mb
    core = make_core(tmp_path, FakeWorkQueue(), memory_budget_mb=budget)
    with pytest.raises(UserError) as refused:
        with core.admit(1, options=LARGE, style_count=1):
            pass
    message = str(refused.value)
    assert "more than the image engine may use" in message and "style scale" in message
    assert "Lower the size (up to 5" in message  # 512 px fits this budget; a little more may too
    with core.admit(1, options=LARGE.replace(size=512), style_count=1):  # the size it suggests fits
        assert core.admission.pending() == 1
    assert core.admission.pending() == 0


async def test_the_engines_announced_budget_bounds_admission_too(tmp_path: Path) -> None:
    work = FakeWorkQueue()
    core = make_core(tmp_path, work, memory_budget_mb=100_000)
    assert core.memory_budget_mb() == 100_000
    with core.admit(1, options=LARGE):
        pass
    work.announced_mb = FIXED_MB + 100  # a worker with less memory than the bot's machine
    assert core.memory_budget_mb() == FIXED_MB + 100
    with pytest.raises(UserError, match="Lower the size"):
        with core.admit(1, options=LARGE):
            pass


async def test_the_dispatcher_fills_a_batch_up_to_the_memory_budget(tmp_path: Path) -> None:
    work = FakeWorkQueue()
    async with started(tmp_path, work, batch_size=4) as core:
        work.slots = 0  # the engine is busy while they arrive
        jobs = [await accepted(core, user) for user in (1, 2, 3, 4)]
        one = core.lineup.cost(jobs[0].id)
        core.configured_budget_mb = one.fixed_mb + 2.5 * one.job_mb  # two of them fit, not three
        work.slots = 1
        work.emit(Ready("cpu"))
        await until(lambda: work.submitted)
        assert work.submitted == [[jobs[0].id, jobs[1].id]]
        for active in jobs[:2]:
            picture().save(core.store.result_path(active.id))
            work.emit(Done(active.id, 10, 2.0, batch_size=2))
        await until(lambda: len(work.submitted) == 2)
        assert work.submitted[1] == [jobs[2].id, jobs[3].id]


async def test_the_eta_counts_the_styles_work(tmp_path: Path) -> None:
    async with started(tmp_path, FakeWorkQueue(slots=0)) as core:
        plain = await accepted(core, 1)
        core.lineup.speed.learn(core.lineup.cost(plain.id).work, 10.0)
        with core.admit(2):
            blend = await core.accept(plain.job.__class__(**{**vars(plain.job), "id": "blend", "user_id": 2}),
                                      picture(), picture(8, 8), picture(30, 30), picture(30, 30))
        assert core.lineup.content_size(blend.id) == core.lineup.content_size(plain.id)
        assert core.lineup.estimate(blend) > core.lineup.estimate(plain) == pytest.approx(10.0)


def test_the_smallest_budget_the_workers_announce_counts_and_nonsense_is_ignored() -> None:
    from bot.work.redis_link import WorkerRoster

    roster = WorkerRoster(None)
    roster.live = {"a": {"memory_mb": 3000}, "b": {"memory_mb": 2000.5}, "c": {}, "d": {"memory_mb": "lots"},
                   "e": {"memory_mb": True}, "f": {"memory_mb": -5}}
    assert roster.memory_budget_mb() == 2000.5
    roster.live = {"old": {"device": "cpu"}}  # a worker from before budgets were announced
    assert roster.memory_budget_mb() is None


def test_the_kept_styles_are_bounded_as_the_engine_uses_them() -> None:
    from bot.jobs.core import kept_inputs
    from nst_engine.cost import STYLE_PIXEL_RATIO, style_size

    options = StylizeOptions(size=64, style_scale=4.0)
    content, styles = kept_inputs(options, picture(640, 480), [picture(2000, 2000), picture(40, 40)])
    assert content.size == (64, 48)
    assert styles[0].size == style_size((2000, 2000), (64, 48), 4.0)
    assert styles[0].width * styles[0].height <= STYLE_PIXEL_RATIO * 64 * 48
    assert styles[1].size == (40, 40)  # never enlarged: the engine scales it up itself
