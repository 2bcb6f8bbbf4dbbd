"""The dispatcher's batching, end to end: waiting jobs of the same output size run as one engine batch."""

from __future__ import annotations

import os
import signal

import pytest

from tests.face.discord_standin import ALICE, BOB, CAROL, StandinThread
from tests.face.harness import (BotProcess, custom_id, decoded, deliveries, engine_pid, job_id, result_message,
                               status_message, stylize, wait_delivered, wait_original, wait_status)

pytestmark = pytest.mark.timeout(180)

CANCEL = "nst:cancel:"


BOT_CONFIG = {"engine": "batch_size = 2"}


def queue_behind_a_blocker(standin: StandinThread, requests: list[tuple[dict, str]]) -> list[str]:
    """Queue ``requests`` (user, quality) while a slow job holds the engine, then cancel that job; returns the
    requests' interaction tokens once all are queued in order."""
    blocker = stylize(standin, ALICE, quality="slow")
    wait_status(standin, int(status_message(standin, blocker)["id"]), "iteration")
    tokens = []
    for position, (who, quality) in enumerate(requests, start=1):
        tokens.append(stylize(standin, who, quality=quality))
        assert f"position **{position}**" in wait_original(standin, tokens[-1], "Queued")
    status = status_message(standin, blocker)
    standin.press(status, custom_id(status, CANCEL), ALICE)
    return tokens


def test_compatible_waiting_jobs_share_a_batch(bot: BotProcess, standin: StandinThread) -> None:
    bob, carol, alice = queue_behind_a_blocker(standin, [(BOB, "fast"), (CAROL, "standard"), (ALICE, "fast")])
    ids = {token: job_id(status_message(standin, token)) for token in (bob, carol, alice)}

    results = {token: result_message(standin, token) for token in (bob, carol, alice)}
    # Bob's and Alice's 48 px jobs ran together, ahead of Carol's 64 px one (another output size).
    bot.wait_until(f"jobs {ids[bob]}, {ids[alice]} run as one batch")
    assert bot.output().count("run as one batch") == 1
    order = sorted(results, key=lambda token: int(results[token]["id"]))
    assert order[-1] == carol
    sizes = {token: decoded(standin, message["attachments"][0]).size for token, message in results.items()}
    assert sizes == {bob: (48, 32), alice: (48, 32), carol: (64, 43)}
    for token in (bob, alice):  # each of the batch is posted once, to its own requester
        assert sum("here is your image" in m["content"] for m in standin.followups(token)) == 1


def test_an_engine_crash_mid_batch_retries_each_job_alone(bot: BotProcess, standin: StandinThread) -> None:
    first, second = queue_behind_a_blocker(standin, [(BOB, "medium"), (CAROL, "medium")])
    jobs = [job_id(status_message(standin, token)) for token in (first, second)]
    bot.wait_until(f"jobs {jobs[0]}, {jobs[1]} run as one batch")
    os.kill(engine_pid(bot), signal.SIGKILL)  # at once: the batch takes seconds, the kill milliseconds
    for job in jobs:
        wait_delivered(standin, job)
        assert f"engine process died during job {job}" in bot.output()
    assert [len(deliveries(standin, job)) for job in jobs] == [1, 1]
    assert bot.output().count("run as one batch") == 2  # this batch once; the retries ran one at a time
