"""The engine process on its own: a real spawned worker with the seeded random VGG19."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.engine_process import EngineProcess, JobSpec
from nst_engine.options import StylizeOptions
from tests.conftest import make_content, make_style

pytestmark = pytest.mark.timeout(120)


def job(tmp_path: Path, job_id: str, **options: Any) -> JobSpec:
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    make_content().save(content)
    make_style().save(style)
    values = StylizeOptions(size=48, iterations=4, device="cpu").replace(**options).to_dict()
    return JobSpec(job_id, str(content), (str(style),), values, str(tmp_path / f"{job_id}.png"))


def broken_job(tmp_path: Path, job_id: str) -> JobSpec:
    """A job whose content file claims to be a PNG but is not one."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    spec = job(tmp_path, job_id)
    return JobSpec(spec.job_id, str(broken), spec.styles, spec.options, spec.result)


async def next_event(engine: EngineProcess, timeout: float = 60) -> dict[str, Any]:
    return await asyncio.wait_for(engine.events.get(), timeout)


async def started(vgg_weights: Path) -> EngineProcess:
    engine = EngineProcess(str(vgg_weights), None)
    engine.start()
    assert (await next_event(engine))["event"] == "ready"
    return engine


async def test_jobs_run_and_cancel_stops_within_one_iteration(tmp_path: Path, vgg_weights: Path) -> None:
    engine = await started(vgg_weights)
    try:
        assert engine.run([job(tmp_path, "a" * 16, iterations=3)])
        events = [await next_event(engine) for _ in range(4)]
        assert [e["event"] for e in events] == ["progress"] * 3 + ["done"]
        assert Image.open(tmp_path / ("a" * 16 + ".png")).size == (48, 32)

        engine.run([job(tmp_path, "b" * 16, iterations=2000, size=64)])
        while (event := await next_event(engine))["iteration"] < 3:
            pass
        engine.cancel("b" * 16)
        seen = event["iteration"]
        while (event := await next_event(engine))["event"] == "progress":
            pass
        assert event["event"] == "done" and event["cancelled"]
        # At most the iteration already under way when the cancel arrived completes after it.
        assert event["iterations"] <= seen + 2
        assert not (tmp_path / ("b" * 16 + ".png")).exists()
    finally:
        await engine.stop()


async def test_a_bad_job_fails_with_a_sentence_and_the_worker_carries_on(tmp_path: Path, vgg_weights: Path) -> None:
    engine = await started(vgg_weights)
    try:
        engine.run([broken_job(tmp_path, "c" * 16)])
        failed = await next_event(engine)
        assert failed["event"] == "failed" and "content image" in failed["message"]
        engine.run([job(tmp_path, "d" * 16, iterations=1)])
        assert [(await next_event(engine))["event"] for _ in range(2)] == ["progress", "done"]
    finally:
        await engine.stop()


async def test_missing_weights_and_a_killed_worker_are_reported(tmp_path: Path, vgg_weights: Path,
                                                                isolated_cache: Path) -> None:
    missing = EngineProcess(None, None)
    missing.start()
    fatal = await next_event(missing)
    assert fatal["event"] == "fatal" and "nst-bot fetch-assets" in fatal["message"]
    assert (await next_event(missing))["event"] == "exit"

    engine = await started(vgg_weights)
    engine.kill()
    exit_event = await next_event(engine)
    assert exit_event["event"] == "exit" and exit_event["code"] != 0
    assert not engine.run([job(tmp_path, "e" * 16)])  # the pipe is closed: the dispatcher must restart it
    await engine.stop()


async def test_a_batch_runs_together_and_cancelling_one_leaves_the_other(tmp_path: Path, vgg_weights: Path) -> None:
    engine = await started(vgg_weights)
    try:
        first, second = job(tmp_path, "f" * 16, iterations=3), job(tmp_path, "g" * 16, iterations=3, strength=4)
        engine.run([first, second])
        events = [await next_event(engine) for _ in range(8)]
        done = {e["job"]: e for e in events if e["event"] == "done"}
        assert set(done) == {first.job_id, second.job_id}
        assert all(e["batch_size"] == 2 and not e["cancelled"] for e in done.values())
        # One pass per iteration for both: their progress events alternate.
        assert [e["job"] for e in events[:6]] == [first.job_id, second.job_id] * 3
        assert Image.open(first.result).size == Image.open(second.result).size == (48, 32)

        keep, stop = job(tmp_path, "h" * 16, iterations=12), job(tmp_path, "i" * 16, iterations=12)
        engine.run([keep, stop])
        while (await next_event(engine))["iteration"] < 2:
            pass
        engine.cancel(stop.job_id)
        events = []
        while not (events and events[-1]["event"] == "done" and events[-1]["job"] == keep.job_id):
            events.append(await next_event(engine))
        cancelled = next(e for e in events if e["job"] == stop.job_id and e["event"] == "done")
        assert cancelled["cancelled"] and cancelled["iterations"] <= 4
        after = events[events.index(cancelled) + 1:]
        assert after and all(e["job"] == keep.job_id for e in after)  # the other job went on alone
        assert events[-1]["iterations"] == 12 and not events[-1]["cancelled"]
        assert Path(keep.result).exists() and not Path(stop.result).exists()
    finally:
        await engine.stop()


async def test_a_bad_job_in_a_batch_fails_alone(tmp_path: Path, vgg_weights: Path) -> None:
    engine = await started(vgg_weights)
    try:
        good, bad = job(tmp_path, "j" * 16, iterations=2), broken_job(tmp_path, "k" * 16)
        engine.run([bad, good])
        outcomes = {}
        while len(outcomes) < 2:
            event = await next_event(engine)
            if event["event"] != "progress":
                outcomes[event["job"]] = event
        assert outcomes[bad.job_id]["event"] == "failed" and "content image" in outcomes[bad.job_id]["message"]
        assert outcomes[good.job_id]["event"] == "done" and Path(good.result).exists()
    finally:
        await engine.stop()
