"""The dispatcher's batching, end to end: waiting jobs of the same output size run as one engine batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.discord_standin import ALICE, BOB, CAROL, StandinThread
from tests.bot.harness import (BotProcess, custom_id, decoded, result_message, status_message, stylize,
                               wait_original, wait_status, write_config)

pytestmark = pytest.mark.timeout(180)

CANCEL = "nst:cancel:"


@pytest.fixture(scope="module")
def bot(standin: StandinThread, workdir: Path, vgg_weights: Path) -> BotProcess:
    config = write_config(workdir, standin, vgg_weights, engine="batch_size = 2")
    process = BotProcess(config, workdir / "bot.log").start().wait_ready()
    yield process
    process.stop()


def job_id(standin: StandinThread, token: str) -> str:
    return custom_id(status_message(standin, token), CANCEL).removeprefix(CANCEL)


def test_compatible_waiting_jobs_share_a_batch(bot: BotProcess, standin: StandinThread) -> None:
    blocker = stylize(standin, ALICE, quality="slow")  # keeps the engine busy while the others queue up
    wait_status(standin, int(status_message(standin, blocker)["id"]), "iteration")
    queued = []
    for position, (who, quality) in enumerate(((BOB, "fast"), (CAROL, "standard"), (ALICE, "fast")), start=1):
        queued.append(stylize(standin, who, quality=quality))
        assert f"position **{position}**" in wait_original(standin, queued[-1], "Queued")
    bob, carol, alice = queued
    ids = {token: job_id(standin, token) for token in (bob, carol, alice)}
    status = status_message(standin, blocker)
    standin.press(status, custom_id(status, CANCEL), ALICE)

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
