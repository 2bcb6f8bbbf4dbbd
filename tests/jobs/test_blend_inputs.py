"""A job's several styles and an upscale's init image: kept on disk, counted by the disk budget, handed to the
engine in its :class:`~bot.work.protocol.JobSpec` (also in JSON, as Redis carries it), and deleted together."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import UserError
from bot.jobs.disk import estimate_png_bytes
from bot.jobs.model import Job
from bot.work.protocol import JobSpec, RunJobs, from_json, to_json
from nst_engine.options import StylizeOptions
from tests.jobs.fakes import FakeFrontend, FakeWorkQueue, make_core, picture, request

pytestmark = pytest.mark.timeout(30)


def blend_request(size: int = 32) -> Job:
    job = request(size=size)
    return dataclasses.replace(job, options=dataclasses.replace(job.options, style_weights=(1.0, 2.0, 3.0)))


async def test_three_styles_and_an_init_are_kept_sent_and_discarded(tmp_path: Path) -> None:
    core = make_core(tmp_path, FakeWorkQueue())
    job = blend_request()
    with core.admit(1):
        active = await core.accept(job, picture(300, 200), picture(400, 100), picture(16, 16), picture(90, 90),
                                   init=picture(300, 200))
    store = core.store
    kept = [Image.open(path).size for path in store.style_paths(job.id)]
    assert [path.name for path in store.style_paths(job.id)] == ["style.png", "style-2.png", "style-3.png"]
    assert kept == [(32, 8), (16, 16), (32, 32)]  # each style fitted to the size the engine uses, never enlarged
    assert Image.open(store.init_path(job.id)).size == (32, 21)  # the init fitted to the output size
    content, styles = store.load_inputs(job.id)
    assert content.size == (32, 21) and [style.size for style in styles] == kept
    await core.start(FakeFrontend())
    spec = core.dispatcher._spec(active)
    assert spec.styles == tuple(str(path) for path in store.style_paths(job.id))
    assert spec.init == str(store.init_path(job.id))
    assert spec.inputs == (spec.content, *spec.styles, spec.init)
    await core.stop()
    store.discard_inputs(job.id)
    assert [path.name for path in store.job_dir(job.id).iterdir()] == []


async def test_the_disk_budget_counts_every_style(tmp_path: Path) -> None:
    budget = 3 * estimate_png_bytes(400, 400)  # room for a content and one style, not for a content and three

    def images(styles: int) -> list[Image.Image]:
        return [picture(400, 400) for _ in range(1 + styles)]

    single = make_core(tmp_path / "one", disk_bytes=budget)
    with single.admit(1):
        await single.accept(request(size=400), *images(1))
    core = make_core(tmp_path / "three", disk_bytes=budget)
    with pytest.raises(UserError, match="storage is full"), core.admit(2):
        await core.accept(blend_request(400), *images(3))


def test_a_store_takes_one_to_three_styles(tmp_path: Path) -> None:
    core = make_core(tmp_path)
    with pytest.raises(ValueError, match="1 to 3 style images, not 4"):
        core.store.save_inputs("abc", picture(), *[picture()] * 4)


def test_the_init_path_survives_json_and_older_messages_still_parse() -> None:
    spec = JobSpec("a1", "c.png", ("s.png", "t.png"), StylizeOptions(size=64, style_weights=(2, 1)), "out.png",
                   "init.png")
    assert from_json(to_json(RunJobs((spec,)))) == RunJobs((spec,))
    older = json.loads(to_json(RunJobs((dataclasses.replace(spec, init=""),))))
    del older["jobs"][0]["init"]  # sent by a bot from before init images
    assert from_json(json.dumps(older)).jobs[0].init == ""
    moved = spec.with_inputs(("k0", "k1", "k2", "k3"))
    assert (moved.content, moved.styles, moved.init) == ("k0", ("k1", "k2"), "k3")
    assert dataclasses.replace(spec, init="").with_inputs(("k0", "k1", "k2")).init == ""
