"""A job with several styles and an init image (an upscale) through the Redis backend: every input reaches the
worker (real redis-server and ``nst-bot worker``) and the engine starts from the init image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bot.work.protocol import Done, JobSpec
from nst_engine.options import StylizeOptions
from tests.conftest import make_style
from tests.work.redis.helpers import Driver, wait_workers, write_inputs
from tests.work.redis.test_workers import start_workers  # noqa: F401 - the fixture these tests use

MAGENTA = (220, 20, 200)


async def test_styles_and_an_init_image_reach_the_worker(tmp_path: Path, queue, start_workers) -> None:  # noqa: F811
    start_workers(1)
    await wait_workers(queue, 1)
    content, style = write_inputs(tmp_path / "inputs")
    second, init = tmp_path / "inputs" / "style-2.png", tmp_path / "inputs" / "init.png"
    make_style(40, seed=4).save(second)
    Image.new("RGB", (48, 32), MAGENTA).save(init)
    options = StylizeOptions(size=48, min_scale=48, iterations=2, style_weights=(2, 1), device="cpu")
    specs = [JobSpec(name, str(content), (str(style), str(second)), options, str(tmp_path / f"{name}.png"), start)
             for name, start in (("started", str(init)), ("plain", ""))]
    driver = Driver(queue)
    driver.add(*specs)

    await driver.run_all()

    assert all([type(event) for event in driver.ends(spec.job_id)] == [Done] for spec in specs)
    distance = {spec.job_id: np.abs(np.asarray(Image.open(spec.result).convert("RGB"), float) - MAGENTA).mean()
                for spec in specs}
    assert distance["started"] < distance["plain"] / 2, distance  # the worker's engine started from the init
