"""The local work queue on its own: a real spawned engine process with the seeded random VGG19, driven through
the :class:`~bot.work.queue.WorkQueue` interface and answered with :mod:`bot.work.protocol` events."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.work.local import ENGINE_NICENESS, LocalWorkQueue
from bot.work.protocol import Done, Event, Failed, JobSpec, Lost, Progress, Ready
from bot.work.queue import WorkUnavailable
from nst_engine.options import StylizeOptions
from tests.conftest import make_content, make_style

pytestmark = pytest.mark.timeout(120)


def job(tmp_path: Path, job_id: str, **options: Any) -> JobSpec:
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    make_content().save(content)
    make_style().save(style)
    values = StylizeOptions(size=48, iterations=4, device="cpu").replace(**options)
    return JobSpec(job_id, str(content), (str(style),), values, str(tmp_path / f"{job_id}.png"))


def broken_job(tmp_path: Path, job_id: str) -> JobSpec:
    """A job whose content file claims to be a PNG but is not one."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    spec = job(tmp_path, job_id)
    return JobSpec(spec.job_id, str(broken), spec.styles, spec.options, spec.result)


async def next_event(work: LocalWorkQueue, timeout: float = 60) -> Event:
    return await asyncio.wait_for(work.events.get(), timeout)


async def started(vgg_weights: Path) -> LocalWorkQueue:
    work = LocalWorkQueue(str(vgg_weights), None)
    await work.start()
    assert isinstance(await next_event(work), Ready) and work.free_slots() == 1
    return work


async def test_jobs_run_and_cancel_stops_within_one_iteration(tmp_path: Path, vgg_weights: Path) -> None:
    work = await started(vgg_weights)
    try:
        await work.submit([job(tmp_path, "a" * 16, iterations=3)])
        assert work.free_slots() == 0
        events = [await next_event(work) for _ in range(4)]
        assert [type(e) for e in events] == [Progress] * 3 + [Done]
        assert Image.open(tmp_path / ("a" * 16 + ".png")).size == (48, 32) and work.free_slots() == 1

        await work.submit([job(tmp_path, "b" * 16, iterations=2000, size=64)])
        while (event := await next_event(work)).iteration < 3:
            pass
        await work.cancel("b" * 16)
        seen = event.iteration
        while isinstance(event := await next_event(work), Progress):
            pass
        assert isinstance(event, Done) and event.cancelled
        # At most the iteration already under way when the cancel arrived completes after it.
        assert event.iterations <= seen + 2
        assert not (tmp_path / ("b" * 16 + ".png")).exists()
    finally:
        await work.close()


async def test_the_engine_runs_at_a_lower_cpu_priority_than_the_bot(vgg_weights: Path) -> None:
    work = await started(vgg_weights)
    try:
        bot, engine = os.getpriority(os.PRIO_PROCESS, 0), os.getpriority(os.PRIO_PROCESS, work.process.pid)
        assert engine == min(19, bot + ENGINE_NICENESS) and (engine > bot or bot == 19)
    finally:
        await work.close()


async def test_a_bad_job_fails_with_a_sentence_and_the_engine_carries_on(tmp_path: Path, vgg_weights: Path) -> None:
    work = await started(vgg_weights)
    try:
        await work.submit([broken_job(tmp_path, "c" * 16)])
        failed = await next_event(work)
        assert isinstance(failed, Failed) and "content image" in failed.message
        await work.submit([job(tmp_path, "d" * 16, iterations=1)])
        assert [type(await next_event(work)) for _ in range(2)] == [Progress, Done]
    finally:
        await work.close()


async def test_missing_weights_refuse_to_start(isolated_cache: Path) -> None:
    with pytest.raises(WorkUnavailable, match="nst-bot fetch-assets"):
        await LocalWorkQueue(None, None).start()


async def test_an_aborted_job_is_lost_and_a_new_engine_starts(tmp_path: Path, vgg_weights: Path) -> None:
    work = await started(vgg_weights)
    try:
        first_pid = work.process.pid
        await work.submit([job(tmp_path, "e" * 16, iterations=2000, size=64)])
        assert isinstance(await next_event(work), Progress)
        await work.abort("e" * 16)
        while isinstance(event := await next_event(work), Progress):
            pass
        assert event == Lost("e" * 16, "the engine process died")
        assert isinstance(await next_event(work), Ready) and work.process.pid != first_pid
        await work.submit([job(tmp_path, "f" * 16, iterations=1)])
        assert [type(await next_event(work)) for _ in range(2)] == [Progress, Done]
    finally:
        await work.close()


async def test_the_engine_process_gets_no_secrets(tmp_path: Path, vgg_weights: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token-for-this-test")
    monkeypatch.setenv("DISCORD_TOKEN_FILE", "/run/secrets/discord")
    monkeypatch.setenv("REDIS_PASSWORD", "hunter2")
    work = await started(vgg_weights)
    try:
        environment = Path(f"/proc/{work.process.pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in environment if entry}
        assert "PATH" in names and not names & {"DISCORD_TOKEN", "DISCORD_TOKEN_FILE", "REDIS_PASSWORD"}
        assert os.environ["DISCORD_TOKEN"] == "secret-token-for-this-test"  # the bot keeps its own
    finally:
        await work.close()


async def test_a_batch_runs_together_and_cancelling_one_leaves_the_other(tmp_path: Path, vgg_weights: Path) -> None:
    work = await started(vgg_weights)
    try:
        first, second = job(tmp_path, "1" * 16, iterations=3), job(tmp_path, "2" * 16, iterations=3, strength=4)
        await work.submit([first, second])
        events = [await next_event(work) for _ in range(8)]
        done = {e.job: e for e in events if isinstance(e, Done)}
        assert set(done) == {first.job_id, second.job_id}
        assert all(e.batch_size == 2 and not e.cancelled for e in done.values())
        # One pass per iteration for both: their progress events alternate.
        assert [e.job for e in events[:6]] == [first.job_id, second.job_id] * 3
        assert Image.open(first.result).size == Image.open(second.result).size == (48, 32)

        keep, stop = job(tmp_path, "3" * 16, iterations=12), job(tmp_path, "4" * 16, iterations=12)
        await work.submit([keep, stop])
        while (await next_event(work)).iteration < 2:
            pass
        await work.cancel(stop.job_id)
        events = []
        while not (events and isinstance(events[-1], Done) and events[-1].job == keep.job_id):
            events.append(await next_event(work))
        cancelled = next(e for e in events if e.job == stop.job_id and isinstance(e, Done))
        assert cancelled.cancelled and cancelled.iterations <= 4
        after = events[events.index(cancelled) + 1:]
        assert after and all(e.job == keep.job_id for e in after)  # the other job went on alone
        assert events[-1].iterations == 12 and not events[-1].cancelled
        assert Path(keep.result).exists() and not Path(stop.result).exists()
    finally:
        await work.close()


async def test_a_bad_job_in_a_batch_fails_alone(tmp_path: Path, vgg_weights: Path) -> None:
    work = await started(vgg_weights)
    try:
        good, bad = job(tmp_path, "5" * 16, iterations=2), broken_job(tmp_path, "6" * 16)
        await work.submit([bad, good])
        outcomes = {}
        while len(outcomes) < 2:
            event = await next_event(work)
            if not isinstance(event, Progress):
                outcomes[event.job] = event
        assert isinstance(outcomes[bad.job_id], Failed) and "content image" in outcomes[bad.job_id].message
        assert isinstance(outcomes[good.job_id], Done) and Path(good.result).exists()
    finally:
        await work.close()
