"""The job cost model (nst_engine.cost): it grows with everything that makes a job bigger, the style bound keeps
``style_scale`` from multiplying memory, and a refusal says what to lower. Its fit to measured peaks is
benchmarks/cost_model.py's (a benchmark: no timed or machine-dependent figures here)."""

from __future__ import annotations

import pytest
import torch

from nst_engine import cost
from nst_engine.cost import (batch_peak_mb, job_cost, largest_size_within, over_budget, style_size,
                             worst_case_cost)
from nst_engine.options import StylizeOptions
from nst_engine.transfer import BatchRequest, _Job
from tests.conftest import make_content, make_style

STANDARD = StylizeOptions(size=512, iterations=80)
PHOTO = (1600, 1200)
STYLE = (600, 600)


def peak(options: StylizeOptions = STANDARD, content: tuple[int, int] = PHOTO, styles: int = 1,
         style: tuple[int, int] = STYLE, device: str = "cpu") -> float:
    return job_cost(options, content, [style] * styles, device=device).peak_mb


def work(options: StylizeOptions = STANDARD, styles: int = 1) -> float:
    return job_cost(options, PHOTO, [STYLE] * styles).work


def test_peak_and_work_grow_with_the_output_size() -> None:
    sizes = (64, 128, 256, 384, 512, 768, 1024, 2048)
    peaks = [peak(STANDARD.replace(size=size)) for size in sizes]
    works = [work(STANDARD.replace(size=size)) for size in sizes]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)
    assert works == sorted(works) and len(set(works)) == len(works)
    assert peaks[-1] > 3 * peaks[4]  # 2048 px: 16 times the pixels of 512 px


def test_a_square_picture_costs_the_most_for_its_long_side() -> None:
    assert peak(content=(1000, 1000)) > peak(content=(1600, 1200)) > peak(content=(2000, 1000))
    assert peak(content=(1200, 1600)) == peak(content=(1600, 1200))  # the orientation does not matter


def test_iterations_styles_and_style_scale_add_work_and_iterations_add_memory() -> None:
    assert work(STANDARD.replace(iterations=160)) > 1.9 * work()
    assert peak(STANDARD.replace(iterations=300)) > peak()  # L-BFGS remembers more steps at the finest scale
    assert work(styles=3) > work(styles=2) > work(styles=1)
    assert work(STANDARD.replace(style_scale=2.0)) > work() > work(STANDARD.replace(style_scale=0.5))
    assert peak(STANDARD.replace(style_scale=2.0)) >= peak()


def test_a_batch_adds_each_job_and_shares_the_engine() -> None:
    one = job_cost(STANDARD, PHOTO, [STYLE])
    assert batch_peak_mb([one]) == pytest.approx(one.peak_mb)
    assert batch_peak_mb([one, one]) == pytest.approx(one.fixed_mb + 2 * one.job_mb)
    assert batch_peak_mb([one] * 3) > batch_peak_mb([one] * 2) > one.peak_mb
    assert batch_peak_mb([]) == 0.0


def test_half_precision_costs_less_on_a_gpu_and_the_same_on_a_cpu() -> None:
    fp32 = peak(STANDARD.replace(precision="fp32"))
    assert peak(STANDARD.replace(precision="bf16")) == peak(STANDARD.replace(precision="auto")) == fp32  # measured
    gpu = {precision: job_cost(STANDARD.replace(precision=precision), PHOTO, [STYLE], device="cuda").job_mb
           for precision in ("fp32", "bf16", "auto")}
    assert gpu["bf16"] == gpu["auto"] < gpu["fp32"] == job_cost(STANDARD, PHOTO, [STYLE]).job_mb


@pytest.mark.parametrize("size", [128, 256, 512, 768, 1024])
def test_style_scale_4_costs_at_most_one_and_a_half_times_style_scale_1(size: int) -> None:
    for styles in (1, 3):
        for style in ((600, 600), (4000, 500), (300, 3000)):
            at_one = peak(STANDARD.replace(size=size), styles=styles, style=style)
            at_four = peak(STANDARD.replace(size=size, style_scale=4.0), styles=styles, style=style)
            assert at_four <= 1.5 * at_one, (size, styles, style)


def test_style_images_are_bounded_by_the_pictures_pixels() -> None:
    for picture in ((512, 384), (384, 512), (128, 96), (1024, 1024)):
        for style in ((600, 600), (5000, 100), (100, 5000)):
            width, height = style_size(style, picture, 4.0)
            assert width * height <= cost.STYLE_PIXEL_RATIO * picture[0] * picture[1]
            assert abs(width * style[1] - height * style[0]) <= 0.5 * (style[0] + style[1])  # the aspect kept
    assert style_size((600, 600), (512, 384), 1.0) == (512, 512)  # within the bound: the long side asked for
    assert style_size((600, 300), (512, 384), 0.5) == (256, 128)


def test_the_engine_uses_the_style_images_at_the_bounded_size() -> None:
    """The tensors the engine makes its targets from, for a job asking for style scale 4: bounded as the model
    says (before the bound they had 4² times the picture's long side squared)."""
    job = _Job(0, BatchRequest(make_content(160, 120), [make_style(100)], StylizeOptions(size=160, style_scale=4.0)))
    content, styles = job.prepared_inputs((160, 120), torch.device("cpu"))
    assert tuple(content.shape[-2:]) == (120, 160)
    assert tuple(styles[0].shape[-2:])[::-1] == style_size((100, 100), (160, 120), 4.0)
    assert styles[0].shape[-1] * styles[0].shape[-2] <= cost.STYLE_PIXEL_RATIO * 160 * 120


def test_the_worst_case_bounds_every_job_with_those_options() -> None:
    options = STANDARD.replace(style_scale=3.0)
    bound = worst_case_cost(options, 2)
    for content in ((1600, 1200), (512, 512), (300, 4000)):
        for style in ((600, 600), (9000, 9000), (40, 30)):
            assert job_cost(options, content, [style, style]).peak_mb <= bound.peak_mb + 1e-6


def test_a_refusal_says_what_to_lower_and_a_size_that_fits() -> None:
    options = StylizeOptions(size=1024, iterations=120, style_scale=3.0)
    budget = worst_case_cost(options.replace(size=600), 2).peak_mb + 1
    message = over_budget(options, 2, worst_case_cost(options, 2).peak_mb, budget)
    fits = largest_size_within(options, 2, budget)
    assert 600 <= fits < 1024
    assert f"up to {fits} px" in message and "size" in message and "quality" in message
    assert "style scale" in message and "GB" in message
    assert worst_case_cost(options.replace(size=fits), 2).peak_mb <= budget
    assert worst_case_cost(options.replace(size=fits + 1), 2).peak_mb > budget
    assert "style scale" not in over_budget(options.replace(style_scale=1.0), 2, 10_000, 1000)  # it would not help
    assert over_budget(options, 2, budget - 1, budget) is None


def test_no_size_fits_a_budget_under_the_engine_itself() -> None:
    assert largest_size_within(STANDARD, 1, cost.FIXED_MB - 1) is None
    assert "raise `[engine] max_job_memory_mb`" in over_budget(STANDARD, 1, 5000, cost.FIXED_MB - 1)


def test_the_default_budget_is_the_machines_less_a_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost, "machine_memory_mb", lambda: 3072.0)  # docker-compose.yml's 3 GB limit
    assert cost.default_budget_mb() == 3072 - cost.RESERVED_MB
    monkeypatch.setattr(cost, "machine_memory_mb", lambda: None)
    assert cost.default_budget_mb() == cost.MIN_BUDGET_MB
    monkeypatch.undo()
    assert 0 < cost.machine_memory_mb() < 1e9  # /proc/meminfo, or this container's limit
