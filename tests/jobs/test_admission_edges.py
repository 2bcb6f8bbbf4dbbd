"""Admission's replies and edges, found by mutation testing (docs/mutation-report.md): what a refusal says when
the wait is known and when it is not, and the cooldown's exact end."""

from __future__ import annotations

import re

import pytest

from bot.errors import UserError
from bot.jobs.model import RUNNING
from tests.jobs.test_rules import Clock, active, admission, lineup


def test_a_user_over_the_limit_with_no_known_wait_is_told_plainly() -> None:
    gate = admission(lineup(active("a"), active("b")), Clock(), max_jobs_per_user=2)
    with pytest.raises(UserError) as refused:
        gate.check(1, 0.0)
    assert str(refused.value).endswith("(the limit is 2). Try again when one finishes.")


def test_a_full_queue_names_when_the_running_batch_frees_a_slot() -> None:
    line = lineup(active("a", user_id=7, state=RUNNING), active("b", user_id=8), running=1)
    line.jobs["a"].eta = 90.0
    with pytest.raises(UserError, match=re.escape("The queue is full (2 jobs). Please try again in about 1m30s.")):
        admission(line, Clock(), max_queue=2).check(1, 0.0)
    line.jobs["a"].eta = None  # not known yet
    with pytest.raises(UserError, match=re.escape("Please try again in a few minutes.")):
        admission(line, Clock(), max_queue=2).check(1, 0.0)


def test_the_cooldown_ends_exactly_when_it_says() -> None:
    clock = Clock()
    gate = admission(lineup(), clock, {1: clock.now - 20}, cooldown_seconds=20)
    gate.check(1, clock.now)  # 20 s after the last job: admitted
    with pytest.raises(UserError, match="Please wait 20 s"):
        gate.check(1, clock.now - 0.5)
