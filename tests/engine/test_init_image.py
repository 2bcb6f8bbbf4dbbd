"""The init image (what an Upscale starts from): the optimisation begins at it instead of at the content, alone
and inside a batch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nst_engine.options import StylizeOptions
from nst_engine.transfer import BatchRequest, Engine

FEW = dict(size=64, min_scale=64, iterations=2)  # one scale, two steps: the start still shows


@pytest.fixture(scope="module")
def engine(vgg_weights) -> Engine:
    return Engine(str(vgg_weights))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, float)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b.resize(a.size))).mean())


def test_the_result_starts_from_the_init_image(engine, content_image, style_image):
    init = Image.new("RGB", content_image.size, (200, 30, 160))  # far from the content's colours
    plain = engine.stylize(content_image, [style_image], StylizeOptions(**FEW)).image
    started = engine.stylize(content_image, [style_image], StylizeOptions(**FEW), init_image=init).image
    assert mean_difference(started, init) < mean_difference(plain, init) / 2
    assert mean_difference(started, content_image) > mean_difference(plain, content_image) + 20


def test_the_content_as_init_image_changes_nothing(engine, content_image, style_image):
    options = StylizeOptions(**{**FEW, "min_scale": 32}, seed=5)  # two scales, a seed's jitter on the start
    plain = engine.stylize(content_image, [style_image], options).image
    same = engine.stylize(content_image, [style_image], options, init_image=content_image).image
    assert plain.tobytes() == same.tobytes()


def test_an_init_image_does_not_split_a_batch(engine, content_image, style_image):
    init = Image.new("RGB", (48, 32), (20, 200, 40))  # smaller than the output, as a result before upscaling
    options = StylizeOptions(**FEW)
    alone = engine.stylize(content_image, [style_image], options, init_image=init).image
    results = engine.stylize_batch([BatchRequest(content_image, [style_image], options, init),
                                    BatchRequest(content_image, [style_image], options)])
    assert {result.batch_size for result in results} == {2}
    assert mean_difference(results[0].image, alone) <= 1  # the same path in a batch as alone
    assert mean_difference(results[0].image, init) < mean_difference(results[1].image, init) / 2
