"""The job core's rules one at a time: admission, estimates, batching choice and the retry policy.
Plain objects only (no event loop needed except where a request is in flight); see tests/jobs/fakes.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import LimitsConfig
from bot.errors import UserError
from bot.jobs.admission import Admission
from bot.jobs.batching import choose_batch
from bot.jobs.estimates import SpeedModel
from bot.jobs.lineup import Lineup
from bot.jobs.model import CANCELLED, FAILED, QUEUED, RUNNING, ActiveJob, Job
from bot.jobs.policy import ENGINE_DIED, MAX_ATTEMPTS, after_lost
from nst_engine.cost import job_cost
from nst_engine.options import StylizeOptions


def active(job_id: str, user_id: int = 1, state: str = QUEUED, size: int = 100, iterations: int = 10,
           attempts: int = 0) -> ActiveJob:
    job = Job(job_id, user_id, "u", 5, 6, "s", "fast", StylizeOptions(size=size, iterations=iterations),
              state=state, attempts=attempts)
    return ActiveJob(job)


def lineup(*jobs: ActiveJob, running: int = 0) -> Lineup:
    line = Lineup(SpeedModel(), lambda job_id: (100, 100))
    for entry in jobs:
        line.add(entry)
        line.enqueue(entry.id)
    line.take([entry.id for entry in jobs[:running]])
    return line


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(line: Lineup, clock: Clock, last: dict[int, float] | None = None, **limits: float) -> Admission:
    settings = {"max_queue": 5, "max_jobs_per_user": 2, "cooldown_seconds": 0.0, **limits}
    return Admission(LimitsConfig(**settings), line, (last or {}).get, clock)


# --------------------------------------------------------------------------------------------- admission

def test_admission_is_released_on_success_and_on_every_error() -> None:
    gate = admission(lineup(), Clock(), max_jobs_per_user=1)
    with gate.admit(1):
        assert gate.pending() == 1
        with pytest.raises(UserError, match=r"You already have 1 job\(s\) queued or running \(the limit is 1\)"):
            gate.check(1, 0.0)
    assert gate.pending() == 0
    for error in (UserError("bad image"), ValueError("a bug"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with gate.admit(1):
                raise error
        assert gate.pending() == 0 and not gate.in_flight


def test_requests_in_flight_count_against_the_cooldown_and_the_queue() -> None:
    clock = Clock()
    gate = admission(lineup(active("a", user_id=9)), clock, cooldown_seconds=20, max_queue=3,
                     max_jobs_per_user=5)
    with gate.admit(1):  # still downloading its images
        clock.now += 1
        with pytest.raises(UserError, match="Please wait 20 s between requests") as refused:
            with gate.admit(1):
                pass
        assert re.search(r"<t:1021:R>", str(refused.value))  # counted from the request in flight
        with gate.admit(2):  # another user is not held back, but fills the queue: 1 job + 2 in flight
            with pytest.raises(UserError, match=r"The queue is full \(3 jobs\)\. Please try again in a few"):
                with gate.admit(3):
                    pass
    clock.now += 25
    with gate.admit(1):  # the cooldown has passed
        pass


def test_the_cooldown_counts_from_the_last_stored_job() -> None:
    clock = Clock()
    gate = admission(lineup(), clock, {1: clock.now - 5}, cooldown_seconds=20)
    with pytest.raises(UserError, match="<t:1016:R>"):
        with gate.admit(1):
            pass
    with gate.admit(2):
        pass


def test_a_user_over_the_limit_is_told_when_a_slot_frees() -> None:
    line = lineup(active("a", state=RUNNING), active("b"), running=1)
    line.jobs["a"].eta = 30.0
    line.speed.learn(job_cost(line.jobs["b"].job.options, (100, 100), ()).work, 60.0)
    gate = admission(line, Clock(), max_jobs_per_user=2)
    with pytest.raises(UserError, match="Try again when one finishes — about 30s"):
        gate.check(1, 0.0)


# --------------------------------------------------------------------------------------------- estimates

def test_estimates_come_from_the_learned_speed() -> None:
    speed = SpeedModel()
    assert speed.estimate(100.0) is None
    speed.learn(100.0, 50.0)
    assert speed.estimate(10.0) == pytest.approx(5.0)
    speed.learn(100.0, 100.0)  # a moving average, weighted to what was learned before
    assert speed.estimate(100.0) == pytest.approx(0.7 * 50 + 0.3 * 100)


def test_queue_positions_and_when_each_job_starts() -> None:
    running = [active("r1", state=RUNNING), active("r2", state=RUNNING)]
    queued = [active("q1", iterations=10), active("q2", iterations=20), active("q3", user_id=2)]
    line = lineup(*running, *queued, running=2)
    assert [line.position(job_id) for job_id in ("r1", "q1", "q2", "q3")] == [0, 1, 2, 3]
    assert line.eta_until_start("q1") is None  # nothing learned yet, and the batch gave no ETA
    running[0].eta, running[1].eta = 12.0, 30.0
    assert line.engine_free_in() == 30.0  # a batch ends with its slowest job
    assert line.eta_until_start("q1") == 30.0 and line.eta_until_start("q2") is None  # q1's length unknown
    line.speed.learn(job_cost(queued[0].job.options, (100, 100), ()).work, 10.0)  # q1 takes 10 s
    q2 = 10.0 * job_cost(queued[1].job.options, (100, 100), ()).work / job_cost(queued[0].job.options, (100, 100), ()).work
    assert 19 < q2 < 20  # twice the iterations; its targets are made once either way
    assert line.eta_until_start("r1") == 0.0
    assert [line.eta_until_start(job_id) for job_id in ("q1", "q2", "q3")] == pytest.approx([30, 40, 40 + q2])
    assert line.eta_until_free(1) == pytest.approx(12.0) and line.eta_until_free(2) == pytest.approx(40 + q2 + 10)
    assert [entry.id for entry in line.ordered()] == ["r1", "r2", "q1", "q2", "q3"]


# -------------------------------------------------------------------------------------------- batching

def test_the_batch_is_the_head_and_later_jobs_with_its_key() -> None:
    keys = {"a": 1, "b": 2, "c": 1, "d": 1, "e": None, "f": 1}
    assert choose_batch(list("abcdef"), 3, keys.get) == ["a", "c", "d"]
    assert choose_batch(list("abcdef"), 1, keys.get) == ["a"]
    assert choose_batch(list("bacdef"), 4, keys.get) == ["b"]  # nobody shares its key
    assert choose_batch(list("eacf"), 4, keys.get) == ["e"]  # a job that must run alone
    assert choose_batch([], 4, keys.get) == []


# ---------------------------------------------------------------------------------------------- retries

@pytest.mark.parametrize("attempts, stopping_by, timed_out, expected", [
    (1, None, False, (QUEUED, "")),
    (MAX_ATTEMPTS, None, False, (FAILED, ENGINE_DIED)),
    (1, "Dana", False, (CANCELLED, "Cancelled by Dana.")),
    (1, None, True, (FAILED, "This image took longer than the time limit (1m30s) and was stopped; "
                             "try a lower quality or size.")),
])
def test_a_lost_job_is_retried_once_unless_cancelled_or_over_its_time(attempts: int, stopping_by: str | None,
                                                                      timed_out: bool, expected: tuple) -> None:
    entry = active("a", state=RUNNING, attempts=attempts)
    entry.stopping_by = stopping_by
    assert after_lost(entry, timed_out=timed_out, time_limit=90) == expected


def test_a_retried_job_goes_first_after_other_retried_jobs() -> None:
    line = lineup(active("a"), active("b"), active("c"), active("d"), running=2)
    for job_id in ("a", "b"):
        line.jobs[job_id].job.attempts = 1
        line.requeue(job_id)
    assert line.waiting == ["a", "b", "c", "d"] and line.running == []


def test_store_round_trips_typed_options(tmp_path: Path) -> None:
    from bot.jobs.store import JobStore

    store = JobStore(tmp_path)
    job = active("0123456789abcdef").job
    job.options = job.options.replace(style_weights=(1.0, 3.0), preserve_colors="luminance")
    store.add(job)
    assert store.get(job.id).options == job.options


def test_a_job_whose_input_is_gone_is_estimated_as_a_square() -> None:
    def missing(job_id: str) -> tuple[int, int]:
        raise FileNotFoundError(job_id)

    line = Lineup(SpeedModel(), missing)
    line.add(active("a", size=100))
    line.speed.learn(job_cost(StylizeOptions(size=100, iterations=10), (100, 100), ()).work, 8.0)
    assert line.content_size("a") == (100, 100) and line.estimate(line.jobs["a"]) == pytest.approx(8.0)
