"""What keeps the job core's cost in proportion to its work (found by benchmarks/capacity.py): queue positions
and start times worked out once per change, not per job; housekeeping that reads only the rows and folders it
acts on in a store of many finished jobs; and the count of requests in hand that makes a bot past its capacity
say "busy"."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from bot.config import LimitsConfig
from bot.jobs.admission import Admission, Busy
from bot.jobs.disk import INPUTS_GRACE, ORPHAN_GRACE, tidy
from bot.jobs.estimates import SpeedModel
from bot.jobs.lineup import Lineup
from bot.jobs.model import DONE, FAILED, QUEUED, ActiveJob, Job, new_job_id
from bot.jobs.store import JobStore
from nst_engine.options import StylizeOptions


class CountingSpeed(SpeedModel):
    """The real speed model, counting how many job lengths were estimated."""

    def __init__(self) -> None:
        super().__init__()
        self.estimates = 0

    def estimate(self, units: float) -> float | None:
        self.estimates += 1
        return super().estimate(units)


def queued(count: int) -> tuple[Lineup, CountingSpeed]:
    speed = CountingSpeed()
    line = Lineup(speed, lambda job_id: (64, 64))
    for index in range(count):
        job = Job(f"j{index}", index, "member", 1, 2, "preset", "fast", StylizeOptions(size=64))
        line.add(ActiveJob(job))
        line.enqueue(job.id)
    line.speed.learn(line.cost("j0").work, 10.0)  # every job takes 10 s
    return line, speed


def test_every_queued_jobs_start_time_costs_one_pass_over_the_queue() -> None:
    line, speed = queued(300)
    speed.estimates = 0
    starts = [line.eta_until_start(f"j{index}") for index in range(300)]
    assert starts == pytest.approx([10.0 * index for index in range(300)])
    assert [line.position(f"j{index}") for index in (0, 150, 299)] == [1, 151, 300]
    assert speed.estimates <= 300  # job by job, the queue ahead of each: 300 * 299 / 2 estimates


def test_start_times_follow_every_change_of_the_queue() -> None:
    line, _ = queued(4)
    assert line.eta_until_start("j3") == pytest.approx(30.0)
    line.take(["j0"])
    line.jobs["j0"].job.state = "running"
    line.jobs["j0"].eta = 4.0
    assert (line.position("j3"), line.eta_until_start("j3")) == (3, pytest.approx(24.0))
    line.jobs["j0"].eta = 1.0  # progress of the running job moves every start time
    assert line.eta_until_start("j3") == pytest.approx(21.0)
    line.remove("j1")
    assert (line.position("j3"), line.eta_until_start("j3")) == (2, pytest.approx(11.0))
    line.speed.learn(line.cost("j2").work, 40.0)  # a slower engine than thought
    assert line.eta_until_start("j3") > 11.0
    assert line.eta_until_start("j0") == 0.0 and line.position("j0") == 0


# ------------------------------------------------------------------------------------------ job store

@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    store = JobStore(tmp_path / "data")
    yield store
    store.close()


def finished(store: JobStore, state: str, finished_ago: float) -> Job:
    now = time.time()
    job = Job(new_job_id(), 1, "member", 2, 3, "preset", "fast", StylizeOptions(size=64), state=state,
              created=now - finished_ago - 5, finished=now - finished_ago)
    store.add(job)
    return job


def steps(store: JobStore, action) -> int:
    """SQLite's virtual-machine steps (in hundreds) that ``action`` costs: how many rows it really reads."""
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0
    store.db.set_progress_handler(count, 100)
    try:
        action()
    finally:
        store.db.set_progress_handler(None, 100)
    return counted[0]


def housekeeping_steps(store: JobStore) -> dict[str, int]:
    now = time.time()
    return {"purge": steps(store, lambda: store.purge(retention_days=400)),
            "inputs to drop": steps(store, lambda: store.ended_without_result(before=now, since=now - 600)),
            "oldest finished": steps(store, lambda: next(iter(store.finished_oldest_first()))),
            "active": steps(store, store.active)}


def test_housekeeping_reads_only_the_rows_it_acts_on_however_long_the_history(tmp_path: Path) -> None:
    costs = []
    for count in (300, 3000):
        store = JobStore(tmp_path / str(count))
        store.db.execute("BEGIN")
        for index in range(count):  # finished over the last year, one a few hours, a tenth failed
            finished(store, FAILED if index % 10 == 0 else DONE, 3 * 3600 * (count - index) / 3 + 3600)
        store.db.execute("COMMIT")
        store.db.execute("ANALYZE")  # statistics that make "state IN (queued, running)" look like a scan's worth
        costs.append(housekeeping_steps(store))
        store.close()
    small, large = costs
    for name in small:
        assert large[name] <= small[name] + 5, f"{name}: {small[name]} → {large[name]} steps for 10x the jobs"

def test_the_oldest_finished_jobs_are_read_a_page_at_a_time_and_may_be_removed_meanwhile(store: JobStore) -> None:
    jobs = [finished(store, DONE if index % 3 else FAILED, 1000 - index) for index in range(150)]
    finished_ids = []
    for job in store.finished_oldest_first():  # removing each as it comes, as making room does
        finished_ids.append(job.id)
        store.remove(job.id)
    assert finished_ids == [job.id for job in jobs]
    assert store.db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)


def test_tidy_looks_again_only_at_jobs_that_ended_since_its_last_pass(store: JobStore) -> None:
    for _ in range(5):
        finished(store, FAILED, INPUTS_GRACE + 60)
    looked_at = []
    original = store.content_path
    store.content_path = lambda job_id: looked_at.append(job_id) or original(job_id)
    tidy(store)
    assert len(looked_at) == 5
    looked_at.clear()
    newer = finished(store, FAILED, INPUTS_GRACE - 30)  # ended after the last pass, within its grace then
    tidy(store, now=time.time() + 60)
    assert looked_at == [newer.id]



def saved(store: JobStore) -> str:
    """A new job as the job core stores it: its inputs' folder, then its row."""
    job_id = new_job_id()
    image = Image.new("RGB", (8, 8))
    store.save_inputs(job_id, image, image)
    store.add(Job(job_id, 1, "member", 2, 3, "preset", "fast", StylizeOptions(size=64)))
    return job_id


def test_after_its_first_pass_tidy_reads_neither_the_jobs_folder_nor_every_id(
        store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    history = [saved(store) for _ in range(30)]
    left_by_a_crash, being_written = store.job_dir(new_job_id()), store.job_dir(new_job_id())
    left_by_a_crash.mkdir()
    being_written.mkdir()  # a folder whose row comes a moment later, as the bot starts
    os.utime(left_by_a_crash, (time.time() - ORPHAN_GRACE - 60,) * 2)
    assert tidy(store) == (0, 1)  # the first pass after opening: every folder
    looked_up = []
    monkeypatch.setattr("bot.jobs.disk.os.listdir", lambda path: pytest.fail("a later pass listed every folder"))
    monkeypatch.setattr(store, "db", Spy(store.db, looked_up))
    new = saved(store)
    assert tidy(store, now=time.time() + ORPHAN_GRACE + 60) == (0, 1)  # the young one, now old, has no row
    assert looked_up == [[being_written.name]] and not being_written.exists()
    assert tidy(store, now=time.time() + ORPHAN_GRACE + 60) == (0, 0) and looked_up == [[being_written.name]]
    assert all(store.inputs_kept(job_id) for job_id in [*history, new])


class Spy:
    """The store's SQLite connection, recording the ids each ``SELECT id FROM jobs WHERE id IN`` asks for."""

    def __init__(self, db, asked: list) -> None:
        self.db, self.asked = db, asked

    def execute(self, sql: str, parameters=()):
        if sql.startswith("SELECT id FROM jobs WHERE id IN"):
            self.asked.append(list(parameters))
        elif sql.strip() == "SELECT id FROM jobs":
            pytest.fail("a later pass read every job id")
        return self.db.execute(sql, parameters)

# ------------------------------------------------------------------------------------------- busy

def test_requests_past_max_in_flight_are_refused_as_busy_until_one_ends() -> None:
    line = Lineup(SpeedModel(), lambda job_id: (64, 64))
    gate = Admission(LimitsConfig(max_in_flight=2), line, lambda user_id: None)
    with gate.handling(), gate.handling():
        with pytest.raises(Busy, match="busy right now; please try again in a minute"):
            with gate.handling():
                pass
    with gate.handling():  # places come back however the requests ended
        assert gate.handled == 1
    with pytest.raises(RuntimeError):
        with gate.handling():
            raise RuntimeError("a request that failed")
    assert gate.handled == 0
