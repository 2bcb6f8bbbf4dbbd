"""The job core on its own (no Discord, no torch, no subprocess): a fake work queue plays the engine and a fake
front end records what would be shown (see tests/jobs/fakes.py); the store is real SQLite on a temporary disk."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest
from PIL import Image

from bot.errors import UserError
from bot.jobs.core import CANCELLED_QUEUED, DISK_TROUBLE, NOT_ACTIVE, STOPPING, JobCore
from bot.jobs.model import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, new_job_id
from bot.jobs.policy import ENGINE_DIED
from bot.work.protocol import Done, Failed, Fatal, Lost, Progress, Ready
from nst_engine.options import StylizeOptions
from tests.conftest import REPO
from tests.jobs.fakes import FakeFrontend, FakeWorkQueue, accepted, make_core, picture, request, until

pytestmark = pytest.mark.timeout(30)


def test_the_job_core_imports_neither_discord_nor_torch() -> None:
    code = ("import sys, bot.jobs.core, bot.work.local, bot.work.protocol; "
            "print(sorted(m for m in ('discord', 'torch', 'aiohttp') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


@asynccontextmanager
async def started(tmp_path: Path, work: FakeWorkQueue | None = None,
                  **settings) -> AsyncIterator[tuple[JobCore, FakeWorkQueue, FakeFrontend]]:
    """A started core whose engine says it is ready; stopped afterwards."""
    work, frontend = work or FakeWorkQueue(), FakeFrontend()
    core = make_core(tmp_path, work, **settings)
    await core.start(frontend)
    work.emit(Ready("cpu"))
    try:
        yield core, work, frontend
    finally:
        await core.stop()


def finish(work: FakeWorkQueue, core, job_id: str, elapsed: float = 2.0) -> None:
    """Play the engine: write the result and report the job done."""
    picture().save(core.store.result_path(job_id))
    work.emit(Done(job_id, 10, elapsed))


async def test_a_job_runs_is_delivered_and_the_speed_is_learned(tmp_path: Path) -> None:
    async with started(tmp_path) as (core, work, frontend):
        active = await accepted(core)
        await until(lambda: work.submitted)
        assert work.submitted == [[active.id]] and frontend.shown == [active.id]
        assert core.store.get(active.id).state == RUNNING and core.store.get(active.id).attempts == 1
        work.emit(Progress(active.id, 4, 10, eta=3.0, preview=b"png"))
        await until(lambda: active.iteration == 4)
        assert (active.eta, active.preview, active.fraction) == (3.0, b"png", 0.4)
        finish(work, core, active.id, elapsed=6.0)
        await until(lambda: frontend.ended)
        assert frontend.delivered == [(active.id, 6.0)]
        assert frontend.ended == [(active.id, DONE, "Done — the result is below.")]
        stored = core.store.get(active.id)
        assert (stored.state, stored.result_message_id, stored.options) == (DONE, 1001, active.job.options)
        assert core.lineup.speed.seconds_per_unit is not None and core.active_jobs() == []
    assert work.closed


async def test_a_result_that_cannot_be_posted_fails_the_job(tmp_path: Path) -> None:
    async with started(tmp_path) as (core, work, frontend):
        frontend.refuse_delivery = True
        active = await accepted(core)
        await until(lambda: work.submitted)
        finish(work, core, active.id)
        await until(lambda: frontend.ended)
        assert frontend.ended == [(active.id, FAILED, "could not post")]


async def test_cancelling_a_queued_a_running_and_a_finished_job(tmp_path: Path) -> None:
    async with started(tmp_path) as (core, work, frontend):
        running, queued = await accepted(core, 1), await accepted(core, 2)
        await until(lambda: work.submitted)
        assert await core.cancel(queued.id, "Bob") == CANCELLED_QUEUED
        assert core.store.get(queued.id).state == CANCELLED and core.position(queued.id) == 0
        assert core.store.get(queued.id).error == "Cancelled by Bob while queued."

        assert await core.cancel(running.id, "Carol") == STOPPING
        assert work.cancelled == [running.id] and running.stopping_by == "Carol"
        assert core.store.get(running.id).state == RUNNING  # until the engine says it stopped
        work.emit(Done(running.id, 3, None, cancelled=True))
        await until(lambda: frontend.ended)
        assert frontend.ended == [(running.id, CANCELLED, "Cancelled by Carol after 3/10 iterations.")]
        assert await core.cancel(running.id, "Carol") == NOT_ACTIVE
        assert work.submitted == [[running.id]]  # the cancelled queued job never reached the engine


async def test_a_job_lost_while_being_cancelled_counts_as_cancelled(tmp_path: Path) -> None:
    async with started(tmp_path) as (core, work, frontend):
        active = await accepted(core)
        await until(lambda: work.submitted)
        await core.cancel(active.id, "Alice")
        work.emit(Lost(active.id, "the engine process died"))
        await until(lambda: frontend.ended)
        assert frontend.ended == [(active.id, CANCELLED, "Cancelled by Alice.")]


async def test_a_lost_job_is_retried_once_alone_and_first_then_failed(tmp_path: Path) -> None:
    async with started(tmp_path, batch_size=4) as (core, work, frontend):
        work.slots = 0  # the engine is busy while both arrive
        lost, waiting = await accepted(core, 1), await accepted(core, 2)
        work.slots = 1
        work.emit(Ready("cpu"))
        await until(lambda: work.submitted)
        assert work.submitted == [[lost.id, waiting.id]]  # one batch key: they ran together
        work.emit(Lost(lost.id, "the engine process died"))
        work.emit(Lost(waiting.id, "the engine process died"))
        fresh = await accepted(core, 3)
        await until(lambda: len(work.submitted) == 2)
        assert work.submitted[1] == [lost.id]  # retried jobs run alone, ahead of the fresh one
        assert core.lineup.waiting == [waiting.id, fresh.id]
        work.emit(Lost(lost.id, "the engine process died"))
        await until(lambda: frontend.ended)
        assert frontend.ended == [(lost.id, FAILED, ENGINE_DIED)]
        assert (core.store.get(lost.id).state, core.store.get(lost.id).attempts) == (FAILED, 2)
        await until(lambda: len(work.submitted) == 3)
        assert work.submitted[2] == [waiting.id]


async def test_a_job_over_its_time_limit_is_aborted_and_failed(tmp_path: Path) -> None:
    async with started(tmp_path, job_timeout=0.05) as (core, work, frontend):
        active = await accepted(core)
        await until(lambda: work.aborted)
        assert work.aborted == [active.id]
        work.emit(Lost(active.id, "killed"))
        await until(lambda: frontend.ended)
        assert frontend.ended[0][1] == FAILED and "longer than the time limit (0s)" in frontend.ended[0][2]


async def test_an_engine_failure_message_reaches_the_job(tmp_path: Path) -> None:
    async with started(tmp_path) as (core, work, frontend):
        active = await accepted(core)
        await until(lambda: work.submitted)
        work.emit(Failed(active.id, "The content image could not be read."))
        await until(lambda: frontend.ended)
        assert frontend.ended == [(active.id, FAILED, "The content image could not be read.")]


@pytest.mark.parametrize("how", ["cannot start", "fatal later"])
async def test_no_engine_is_reported_through_the_unavailable_future(tmp_path: Path, how: str) -> None:
    work = FakeWorkQueue(unavailable="no weights" if how == "cannot start" else None)
    async with started(tmp_path, work) as (core, work, _):
        if how == "fatal later":
            work.emit(Fatal("no weights"))
        assert await core.unavailable == "no weights"


async def test_resume_keeps_the_stored_order_and_requeues_running_jobs(tmp_path: Path) -> None:
    first = make_core(tmp_path)
    jobs = []
    for created, state in ((30.0, QUEUED), (10.0, RUNNING), (20.0, QUEUED), (5.0, DONE)):
        job = Job(new_job_id(), 1, "a", 5, 6, "s", "fast", StylizeOptions(size=32), state=state, created=created)
        first.store.add(job)
        first.store.save_inputs(job.id, picture(), picture())
        jobs.append(job)
    async with started(tmp_path, FakeWorkQueue(slots=0)) as (core, _, _):  # a busy engine: the order stays
        assert core.lineup.waiting == [jobs[1].id, jobs[2].id, jobs[0].id]
        assert core.store.get(jobs[1].id).state == QUEUED
        assert [core.position(job.id) for job in jobs] == [3, 1, 2, 0]


async def test_a_result_made_before_a_restart_is_delivered_without_the_engine(tmp_path: Path) -> None:
    first = make_core(tmp_path)
    job = Job(new_job_id(), 1, "a", 5, 6, "s", "fast", StylizeOptions(size=32), state=RUNNING)
    first.store.add(job)
    first.store.save_inputs(job.id, picture(), picture())
    picture().save(first.store.result_path(job.id))
    async with started(tmp_path) as (core, work, frontend):
        await until(lambda: frontend.ended)
        assert frontend.delivered == [(job.id, None)] and work.submitted == []  # None: look before posting


async def test_a_disk_that_cannot_be_written_is_a_clear_refusal(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    core = make_core(tmp_path)
    (tmp_path / "data" / "jobs").write_text("a file where the jobs folder should be")
    with caplog.at_level(logging.WARNING), pytest.raises(UserError, match="disk is full or read-only"):
        with core.admit(1):
            await core.accept(request(), picture(), picture())
    assert str(DISK_TROUBLE).startswith("The bot could not save your images")
    assert [r.levelname for r in caplog.records] == ["WARNING"] and not caplog.records[0].exc_info
    assert core.admission.pending() == 0 and core.active_jobs() == []


async def test_a_job_that_could_not_be_stored_leaves_no_folder_behind(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    core = make_core(tmp_path)
    monkeypatch.setattr(core.store, "make_inputs_durable", lambda job_id: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(UserError, match="disk is full or read-only"):
        with core.admit(1):
            await core.accept(request(), picture(), picture())
    assert list((tmp_path / "data" / "jobs").iterdir()) == []  # housekeeping would find it only after a restart


async def test_the_disk_budget_evicts_finished_jobs_first_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    budget = 1024 * 1024  # each accepted job's inputs need about 10 KB (estimated as uncompressed PNGs)
    core = make_core(tmp_path, disk_bytes=budget)
    old = dataclasses.replace(request(), state=DONE, finished=1.0)
    core.store.add(old)
    core.store.job_dir(old.id).mkdir(parents=True)
    (core.store.job_dir(old.id) / "result.png").write_bytes(b"x" * (budget - 4096))  # the budget is nearly used
    newer = await accepted(core)
    assert core.store.get(old.id) is None and not core.store.job_dir(old.id).exists()  # the finished job made room
    assert core.store.get(newer.id) is not None
    with pytest.raises(UserError, match="storage is full"), core.admit(2):
        await core.accept(request(2, size=4000), picture(4000, 4000), picture())  # ~48 MB: over the budget
    assert core.admission.pending() == 0 and [a.id for a in core.active_jobs()] == [newer.id]


async def test_inputs_are_kept_at_the_size_the_job_can_use(tmp_path: Path) -> None:
    core = make_core(tmp_path)
    job = dataclasses.replace(request(size=32), options=StylizeOptions(size=32, style_scale=2.0, device="cpu"))
    with core.admit(1):
        await core.accept(job, picture(300, 200), picture(400, 100))
    kept = [Image.open(path).size for path in (core.store.content_path(job.id), core.store.style_path(job.id))]
    assert kept == [(32, 21), (64, 16)]  # content at the output size, the style at the size the engine scales it to
    small = request()
    with core.admit(2):
        await core.accept(small, picture(12, 8), picture(8, 8))
    assert Image.open(core.store.content_path(small.id)).size == (12, 8)  # never enlarged
