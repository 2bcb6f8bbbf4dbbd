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
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        bad = job(tmp_path, "c" * 16)
        engine.run([JobSpec(bad.job_id, str(broken), bad.styles, bad.options, bad.result)])
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
