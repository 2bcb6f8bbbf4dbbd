"""The cost model at its edges (found by mutation testing, docs/mutation-report.md): a one-scale job costs exactly
what the model in nst_engine/cost.py's docstring adds up, the device and precision reach every prediction, the
size a refusal suggests is the largest that fits, its words, and where the machine's memory is read from."""

from __future__ import annotations

import pytest

from nst_engine import cost
from nst_engine.cost import (MB, job_cost, largest_size_within, over_budget, scale_terms, worst_case_cost)
from nst_engine.options import StylizeOptions

SIDE = 64  # one scale (under the default min_scale of 128), framed: 8 px of mirrored frame on each side
FRAMED = (SIDE + 2 * 8) ** 2
IMAGE = SIDE * SIDE * 3 * 4  # one RGB fp32 copy of the picture
SQUARE = (SIDE, SIDE)


@pytest.mark.parametrize("iterations, slots", [(1, 2), (10, 10), (200, 51)])
def test_a_one_scale_job_costs_what_the_model_adds_up(iterations: int, slots: int) -> None:
    """L-BFGS keeps two copies of the picture per slot of its history (the steps it can remember, at least 1 and
    at most 50, and a free one: nst_engine/lbfgs.py), and 4 more (image, best, direction, gradient); the peak is
    the optimisation's phase, the work its iterations plus one pass of each image."""
    options = StylizeOptions(size=SIDE, iterations=iterations)
    [term] = scale_terms(options, SQUARE, [SQUARE])
    state = (2 * slots + 4) * IMAGE
    assert (term.picture, term.largest_style, term.all_styles, term.iterations) == (FRAMED, FRAMED, FRAMED, iterations)
    assert (term.state_bytes, term.held_bytes) == (state, 0)
    predicted = job_cost(options, SQUARE, [SQUARE])
    assert predicted.fixed_mb == cost.FIXED_MB
    assert predicted.peak_mb == pytest.approx(cost.FIXED_MB + (cost.OPTIMISE_BYTES_PER_PIXEL * FRAMED + state) / MB,
                                              abs=1e-9)
    assert predicted.work == iterations * FRAMED + cost.FORWARD_SHARE * (FRAMED + FRAMED)


def test_the_device_and_precision_decide_the_share_and_the_fixed_part() -> None:
    state = (2 * 2 + 4) * IMAGE  # one iteration: the history's two slots, and image, best, direction, gradient
    gpu = job_cost(StylizeOptions(size=SIDE, iterations=1, precision="bf16"), SQUARE, [SQUARE], device="cuda")
    assert gpu.fixed_mb == cost.GPU_FIXED_MB
    assert gpu.peak_mb == pytest.approx(
        cost.GPU_FIXED_MB + (cost.HALF_PRECISION_SHARE * cost.OPTIMISE_BYTES_PER_PIXEL * FRAMED + state) / MB, abs=1e-9)
    # The options' own device wins over the caller's default, "auto" leaves it to the caller.
    named = StylizeOptions(size=SIDE, iterations=1, precision="bf16", device="cuda")
    assert job_cost(named, SQUARE, [SQUARE]) == gpu
    assert job_cost(named.replace(device="cpu"), SQUARE, [SQUARE], device="cuda").fixed_mb == cost.FIXED_MB


def test_each_scale_holds_the_previous_ones_state_and_no_styles_hold_nothing() -> None:
    coarse, fine = scale_terms(StylizeOptions(size=256, iterations=80), (256, 256), [(256, 256)])
    assert coarse.held_bytes == 0 and fine.held_bytes == coarse.state_bytes > 0
    [term] = scale_terms(StylizeOptions(size=SIDE, iterations=1), SQUARE, [])
    assert (term.largest_style, term.all_styles) == (0, 0)


def test_the_peak_is_the_style_pass_where_that_is_the_larger_phase() -> None:
    """A sliver of a picture (20:1, 24 px long: 1 px high) whose style image rounds up to more pixels than it has:
    the style pass, with the coarser scale's optimiser state still held, outweighs the optimisation itself."""
    options = StylizeOptions(size=24, iterations=2, min_scale=16, scale_ratio=1.5, style_scale=2.0)
    terms = scale_terms(options, (2000, 100), [(2000, 100)])
    targets = [cost.TARGET_BYTES_PER_PIXEL * term.largest_style + term.held_bytes for term in terms]
    optimise = [cost.OPTIMISE_BYTES_PER_PIXEL * term.picture + term.state_bytes for term in terms]
    assert max(targets) > max(optimise) and terms[targets.index(max(targets))].held_bytes > 0
    assert job_cost(options, (2000, 100), [(2000, 100)]).peak_mb == pytest.approx(
        cost.FIXED_MB + max(targets) / MB, abs=1e-9)


def test_the_worst_case_is_on_the_device_asked_for() -> None:
    options = StylizeOptions(size=512, iterations=80, precision="bf16")
    square = (512, 512)
    assert worst_case_cost(options, 2, device="cuda") == job_cost(options, square, [square] * 2, device="cuda")
    assert worst_case_cost(options, 2, device="cuda").peak_mb < worst_case_cost(options, 2).peak_mb


@pytest.mark.parametrize("size", [272, 1000])  # 272: the first pass lands on 16 px exactly; 1000: it does not
def test_the_size_a_refusal_suggests_is_the_largest_that_fits(size: int) -> None:
    options = StylizeOptions(size=size, iterations=80)

    def peak(at: int) -> float:
        return worst_case_cost(options.replace(size=at), 1).peak_mb

    for at in (16, 17, 24, 40, 100, 257, 271, 333, 600, 999):
        if at > size:
            continue
        fits = largest_size_within(options, 1, peak(at))  # a budget of exactly what that size needs
        assert type(fits) is int and fits >= at, (size, at, fits)
        assert peak(fits) <= peak(at) and (fits == size or peak(fits + 1) > peak(at)), (size, at, fits)


def test_where_a_smaller_size_costs_more_the_suggestion_still_fits_and_the_next_size_up_does_not() -> None:
    """With coarse scales down to 16 px, 31 px adds a scale that 30 px lacks (its finest scale then has fewer
    iterations), so it costs less. Under 48 px the scan tries every size: there it finds the very largest."""
    options = StylizeOptions(size=100, iterations=80, min_scale=16, scale_ratio=2.0)

    def peak(at: int) -> float:
        return worst_case_cost(options.replace(size=at), 1).peak_mb

    assert peak(31) < peak(30)
    for at in range(16, 101):
        fits = largest_size_within(options, 1, peak(at))
        assert peak(fits) <= peak(at) and (fits == 100 or peak(fits + 1) > peak(at)), (at, fits)
    small = options.replace(size=32)
    for at in range(16, 33):
        largest = max(size for size in range(16, 33) if peak(size) <= peak(at))
        assert largest_size_within(small, 1, peak(at)) == largest, at


def test_the_size_a_refusal_suggests_is_for_the_device_asked_for() -> None:
    options = StylizeOptions(size=1024, iterations=80, precision="bf16")
    budget = worst_case_cost(options.replace(size=500), 1).peak_mb
    on_gpu = largest_size_within(options, 1, budget, device="cuda")
    assert on_gpu > largest_size_within(options, 1, budget)
    assert worst_case_cost(options.replace(size=on_gpu), 1, device="cuda").peak_mb <= budget
    assert worst_case_cost(options.replace(size=on_gpu + 1), 1, device="cuda").peak_mb > budget
    assert f"up to {on_gpu} px" in over_budget(options, 1, 10_000, budget, device="cuda")


def test_a_refusal_says_it_all_in_gigabytes_and_lists_what_to_lower() -> None:
    """2099.3 MB is just over 2.05 GB and 1075.3 MB just over 1.05 GB: both shown rounded up, to one decimal."""
    options = StylizeOptions(size=1024, iterations=120, style_scale=1.5)
    needs = "This request could need about 2.1 GB of memory, more than the image engine may use (1.1 GB)."
    fits = largest_size_within(options, 1, 1075.3)
    assert over_budget(options, 1, 2099.3, 1075.3) == (
        f"{needs} Lower the size (up to {fits} px fits with the rest as asked), the quality (fewer iterations) "
        "or the style scale, and try again.")
    plain = options.replace(style_scale=1.0)
    fits = largest_size_within(plain, 1, 1075.3)
    assert over_budget(plain, 1, 2099.3, 1075.3) == (
        f"{needs} Lower the size (up to {fits} px fits with the rest as asked) or the quality (fewer iterations), "
        "and try again.")


def test_the_machines_memory_is_the_least_of_meminfo_and_the_cgroup_limits(tmp_path, monkeypatch) -> None:
    meminfo, v2, v1 = tmp_path / "meminfo", tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    meminfo.write_text("MemFree:     1000 kB\nMemTotal:    8388608 kB\n")
    monkeypatch.setattr(cost, "MEMINFO", meminfo)
    monkeypatch.setattr(cost, "CGROUP_LIMITS", (v2, v1))
    assert cost.machine_memory_mb() == 8192.0  # no cgroup files
    v2.write_text("max\n")
    v1.write_text(f"{3 << 30}\n")
    assert cost.machine_memory_mb() == 3072.0  # cgroup v2 sets no limit; the v1 one is still read
    v2.write_text(f"{2 << 30}\n")
    assert cost.machine_memory_mb() == 2048.0
    for path in (meminfo, v2, v1):
        path.unlink()
    assert cost.machine_memory_mb() is None
