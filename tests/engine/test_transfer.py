"""The optimisation, measured on a 96×64 content / 64 px style pair with a seeded random VGG19 loaded from a
torchvision-format file through the real weights path."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from nst_engine.cost import style_size
from nst_engine.options import StylizeOptions, scale_schedule
from nst_engine.transfer import BatchRequest, Engine, _Job, to_tensor
from nst_engine.color import rgb_to_ycbcr
from tests.conftest import make_style, style_distance

SMALL = dict(size=64, min_scale=32, iterations=24)


@pytest.fixture(scope="module")
def engine(vgg_weights) -> Engine:
    return Engine(str(vgg_weights))


def luminance_correlation(a: Image.Image, b: Image.Image) -> float:
    """Correlation of blurred luminance: does the picture keep the other's shapes (not its fine texture)?"""
    x, y = (np.asarray(img.convert("L").resize((48, 32)).filter(ImageFilter.GaussianBlur(2)), float).ravel()
            for img in (a, b))
    return float(np.corrcoef(x, y)[0, 1])


def chroma_error(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute Cb/Cr difference (0..1 scale) between two same-sized images."""
    ya, yb = (rgb_to_ycbcr(to_tensor(img, torch.device("cpu"))) for img in (a, b.resize(a.size)))
    return float((ya[:, 1:] - yb[:, 1:]).abs().mean())


def test_style_loss_drops_by_a_large_factor_and_content_stays_recognisable(engine, content_image, style_image):
    result = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL))
    before = style_distance(engine, content_image.resize(result.image.size), style_image)
    after = style_distance(engine, result.image, style_image)
    print(f"style distance {before:.3f} → {after:.3f} ({before / after:.1f}× lower); "
          f"content correlation {luminance_correlation(result.image, content_image):.2f}")
    assert before / after > 4
    # The stylised picture still looks like the content, far more than like the style.
    assert luminance_correlation(result.image, content_image) > 0.5
    assert luminance_correlation(result.image, content_image) > 2 * abs(
        luminance_correlation(style_image.resize(content_image.size), content_image))
    assert result.image.size == (64, 43) and not result.cancelled


def test_iteration_bound_is_exact_over_all_scales(engine, content_image, style_image):
    seen = []
    result = engine.stylize(content_image, [style_image], StylizeOptions(size=64, min_scale=16, iterations=7),
                            on_progress=seen.append)
    assert [p.iteration for p in seen] == list(range(1, 8)) and result.iterations == 7
    assert {p.total for p in seen} == {7}
    assert seen[-1].scale_index == seen[-1].scale_count - 1 and seen[-1].scale_count >= 2
    assert max(seen[-1].width, seen[-1].height) == 64 and seen[-1].eta == pytest.approx(0, abs=1e-6)
    assert set(seen[-1].losses) >= {"content", "style", "tv", "total"}


@pytest.mark.parametrize("size, iterations", [(64, 1), (64, 2), (512, 7), (512, 150), (1000, 333), (100, 5)])
def test_schedule_splits_iterations_exactly_coarse_first(size, iterations):
    schedule = scale_schedule(size, iterations, min_scale=64, ratio=2.0)
    assert sum(s.iterations for s in schedule) == iterations
    assert schedule[-1].long_side == size and all(s.iterations >= 1 for s in schedule)
    assert [s.long_side for s in schedule] == sorted(s.long_side for s in schedule)


def test_cancellation_stops_within_one_iteration(engine, content_image, style_image):
    seen = []
    result = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL), on_progress=seen.append,
                            should_stop=lambda: len(seen) >= 3)
    assert result.cancelled and result.iterations == 3 and len(seen) == 3
    assert result.image.size == (64, 43)  # a usable partial result at the output size

    stop = threading.Event()
    result = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL),
                            on_progress=lambda p: p.iteration == 5 and stop.set(), should_stop=stop)
    assert result.cancelled and result.iterations == 5


def test_luminance_preservation_keeps_the_content_chroma(engine, content_image, style_image):
    plain = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL)).image
    kept = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL, preserve_colors="luminance")).image
    histogram = engine.stylize(content_image, [style_image],
                               StylizeOptions(**SMALL, preserve_colors="histogram")).image
    errors = {name: chroma_error(image, content_image) for name, image in
              (("none", plain), ("luminance", kept), ("histogram", histogram))}
    print("chroma error vs content:", errors)
    assert errors["luminance"] < 0.01  # only 8-bit rounding
    assert errors["none"] > 5 * errors["luminance"]
    assert errors["histogram"] < errors["none"]
    assert luminance_correlation(kept, content_image) > 0.5


def test_style_blend_weights_change_the_result(engine, content_image, style_image):
    other = make_style(64, seed=7).transpose(Image.Transpose.ROTATE_90).convert("L").convert("RGB")
    run = lambda weights, styles: np.asarray(engine.stylize(  # noqa: E731
        content_image, styles, StylizeOptions(**SMALL, style_weights=weights)).image, float)
    first_only = run((1.0, 0.0), [style_image, other])
    alone = run((), [style_image])
    second_only = run((0.0, 1.0), [style_image, other])
    blend = run((1.0, 1.0), [style_image, other])
    assert np.abs(first_only - alone).max() <= 1  # a zero weight removes a style entirely
    assert np.abs(first_only - second_only).mean() > 10
    assert 0 < np.abs(blend - first_only).mean() < np.abs(second_only - first_only).mean() * 1.5


def test_deterministic_for_a_seed_on_cpu(engine, content_image, style_image):
    options = StylizeOptions(**{**SMALL, "iterations": 8}, init="noise", seed=11)
    first = engine.stylize(content_image, [style_image], options).image.tobytes()
    again = engine.stylize(content_image, [style_image], options).image.tobytes()
    other_seed = engine.stylize(content_image, [style_image], options.replace(seed=12)).image.tobytes()
    assert first == again and first != other_seed


def test_previews_every_n_iterations(engine, content_image, style_image):
    seen = []
    engine.stylize(content_image, [style_image], StylizeOptions(**{**SMALL, "iterations": 9}, preview_every=4,
                                                               preview_size=32), on_progress=seen.append)
    previews = {p.iteration: p.preview for p in seen if p.preview is not None}
    assert set(previews) == {4, 8, 9}  # every 4th and the last
    assert all(max(image.size) == 32 and image.mode == "RGB" for image in previews.values())


def test_one_shot_stylize_accepts_paths_and_overrides(vgg_weights, tmp_path, content_image, style_image):
    from nst_engine import stylize

    content_image.save(tmp_path / "c.png")
    style_image.save(tmp_path / "s.jpg")
    result = stylize(tmp_path / "c.png", tmp_path / "s.jpg", weights=str(vgg_weights), size=48, iterations=2,
                     device="cpu")
    assert result.image.size == (48, 32) and result.iterations == 2 and result.device == "cpu"


def test_adam_and_noise_init_also_stylise(engine, content_image, style_image):
    options = StylizeOptions(**SMALL, optimizer="adam", learning_rate=0.05, init="noise")
    result = engine.stylize(content_image, [style_image], options)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (43, 64, 3), dtype=np.uint8))
    assert style_distance(engine, result.image, style_image) < style_distance(engine, noise, style_image) / 2


def stripe_period(channel: torch.Tensor) -> float:
    """The dominant horizontal period, in pixels, of a (height, width) picture: its row spectrum's peak."""
    rows = channel - channel.mean(dim=1, keepdim=True)
    power = (torch.fft.rfft(rows, dim=1).abs() ** 2).mean(dim=0)
    power[0] = 0
    return channel.shape[1] / int(power.argmax())


def test_style_scale_changes_the_texture_size(engine, content_image, style_image):
    # The texture the optimiser matches: the style's red checks (8 px across in the 64-px style image) at the
    # size the engine uses them for a 128-px picture: half, the same and twice the picture's long side (that
    # last one bounded by the cost model's pixel ratio, to 147 px).
    assert stripe_period(to_tensor(style_image, torch.device("cpu"))[0, 0]) == 8
    periods = {}
    for scale in (0.5, 1.0, 2.0):
        job = _Job(0, BatchRequest(content_image, [style_image], StylizeOptions(size=128, style_scale=scale)))
        _, (style,) = job.prepared_inputs((128, 85), torch.device("cpu"))
        periods[scale] = stripe_period(style[0, 0])
    assert periods[0.5] == 8 and periods[1.0] == 16 < periods[2.0]
    assert periods[2.0] == pytest.approx(8 * style_size((64, 64), (128, 85), 2.0)[0] / 64, rel=0.02)
    fine = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL, style_scale=0.5)).image
    coarse = engine.stylize(content_image, [style_image], StylizeOptions(**SMALL, style_scale=2.0)).image
    assert np.abs(np.asarray(fine, float) - np.asarray(coarse, float)).mean() > 5
