"""Batched optimisation on the CPU: jobs optimised together give what they give alone, stop alone, and only
compatible jobs share a batch. Real engine, seeded random VGG19 loaded from a torchvision-format file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst_engine.options import StylizeOptions
from nst_engine.transfer import BatchRequest, Engine, _Job, _Rows
from tests.conftest import make_content, make_style

# fp32 whatever the CPU: where bf16 is native (auto picks it) each rounding is 2^-8 instead of 2^-24 and the
# chaos below grows past its bound (4.4 grey levels on a Zen 4 EPYC); bf16 against fp32 is
# tests/speed/test_precision_layout.py's. A GPU: tests/speed/test_cuda.py.
SMALL = dict(size=48, min_scale=24, iterations=10, device="cpu", precision="fp32")
# A batch of two runs its convolutions blocked differently from one image, so activations and gradients differ
# by rounding (about 1e-6 relative; more where a ReLU input sits within rounding of 0), and L-BFGS amplifies
# that over the iterations, with zero as with reflected padding (benchmarks/quality.py --only rounding,
# docs/quality.md: after 10 iterations batched and alone differ by up to 1.4 grey levels, after 14 by up to 6).
# Here, with OMP_NUM_THREADS=1, the first job differs by 1.8 grey levels with reflected padding, exactly as much
# as the same job alone differs between 1 and 2 threads, and its end loss by 2.6 % (1.1110 alone with 1 thread,
# 1.1404 alone with 2 and batched with either). So: the first iteration starts from the same image and agrees
# to rounding (a seed-0 start's content loss is rounding itself, about 0); the end agrees within these.
CHAOS_GREY_LEVELS = 4.0
CHAOS_LOSS = 0.05


@pytest.fixture(scope="module")
def engine(vgg_weights) -> Engine:
    return Engine(str(vgg_weights))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=float)


def two_jobs(**overrides) -> list[BatchRequest]:
    """Different styles, strengths and seeds, one output size: a batch the dispatcher would form."""
    content = make_content()
    return [BatchRequest(content, [make_style(64, seed=1)], StylizeOptions(**SMALL, **overrides)),
            BatchRequest(content.transpose(Image.Transpose.FLIP_LEFT_RIGHT), [make_style(64, seed=5).rotate(90)],
                         StylizeOptions(**SMALL, **overrides, strength=3.0, seed=9))]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_batched_jobs_match_their_one_by_one_results(engine, optimizer):
    requests = two_jobs(optimizer=optimizer, learning_rate=0.05)
    first: dict[tuple[str, int], dict[str, float]] = {}

    def keep_first(run: str, index: int, progress) -> None:
        first.setdefault((run, index), progress.losses)

    batched = engine.stylize_batch(requests, on_progress=lambda i, p: keep_first("batched", i, p))
    alone = [engine.stylize(r.content, r.styles, r.options, on_progress=lambda p, i=i: keep_first("alone", i, p))
             for i, r in enumerate(requests)]
    assert [r.batch_size for r in batched] == [2, 2] and alone[0].batch_size == 1
    for index, (together, single) in enumerate(zip(batched, alone)):
        for name, value in first[("alone", index)].items():
            assert first[("batched", index)][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
        difference = np.abs(pixels(together.image) - pixels(single.image))
        print(f"{optimizer}: mean |batched - alone| = {difference.mean():.3f} / 255, max {difference.max():.0f}")
        assert difference.mean() < CHAOS_GREY_LEVELS and together.iterations == single.iterations == 10
        assert together.losses["total"] == pytest.approx(single.losses["total"], rel=CHAOS_LOSS)
    # The two jobs really are different (a batch that mixed them up would fail the comparison above).
    assert np.abs(pixels(batched[0].image) - pixels(batched[1].image)).mean() > 10


def test_a_cancelled_job_stops_and_the_others_go_on(engine):
    requests = two_jobs()
    seen: dict[int, list[int]] = {0: [], 1: []}
    results = engine.stylize_batch(requests, on_progress=lambda i, p: seen[i].append(p.iteration),
                                   should_stop=lambda i: i == 1 and len(seen[1]) >= 3)
    assert results[1].cancelled and results[1].iterations == 3 and seen[1] == [1, 2, 3]
    assert not results[0].cancelled and seen[0] == list(range(1, 11))
    assert results[1].image.size == results[0].image.size == (48, 32)  # a usable partial result
    # The survivor's path is unchanged by its neighbour leaving the batch.
    alone = engine.stylize(requests[0].content, requests[0].styles, requests[0].options)
    assert np.abs(pixels(results[0].image) - pixels(alone.image)).mean() < CHAOS_GREY_LEVELS


def test_incompatible_jobs_are_optimised_in_separate_batches(engine):
    content, style = make_content(), make_style()
    requests = [BatchRequest(content, [style], StylizeOptions(**SMALL)),
                BatchRequest(content, [style], StylizeOptions(**{**SMALL, "size": 40})),
                BatchRequest(content.rotate(90, expand=True), [style], StylizeOptions(**SMALL)),
                BatchRequest(content, [style, style.rotate(90)], StylizeOptions(**SMALL, strength=2.0))]
    results = engine.stylize_batch(requests)
    assert [r.image.size for r in results] == [(48, 32), (40, 27), (32, 48), (48, 32)]
    assert [r.batch_size for r in results] == [2, 1, 1, 2]  # the first and the last share a batch


def test_batch_key_groups_by_output_size_schedule_and_network():
    base = StylizeOptions(size=512, iterations=150)
    key = base.batch_key((1024, 768))
    assert key == base.replace(strength=4, seed=3, preserve_colors="luminance", style_weights=(1, 2),
                               optimizer="adam").batch_key((2048, 1536))
    assert key != base.batch_key((1024, 700))  # another aspect ratio: another output size
    for change in ({"size": 384}, {"iterations": 100}, {"min_scale": 64}, {"pooling": "max"},
                   {"precision": "fp32"}, {"style_layers": ("relu1_1", "relu2_1")}):
        assert key != base.replace(**change).batch_key((1024, 768)), change


def test_per_job_progress_is_exact_and_ordered(engine):
    events: list[tuple[int, int, int]] = []
    engine.stylize_batch(two_jobs(), on_progress=lambda i, p: events.append((i, p.iteration, p.total)))
    for index in (0, 1):
        assert [it for i, it, _ in events if i == index] == list(range(1, 11))
    assert {total for _, _, total in events} == {10}


def test_a_job_leaving_the_batch_keeps_its_own_best_image_not_the_batchs():
    """Its result is its row; holding a view would keep every row of the batch alive until the batch ends (at
    2048 px a row is 50 MB, and each job of eight leaving in turn would hold the rows left at that moment)."""
    jobs = [_Job(index, BatchRequest(make_content(), [make_style()], StylizeOptions(**SMALL))) for index in range(3)]
    starts = [torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(index)) for index in range(3)]
    rows = _Rows(jobs, starts, 4, None)
    rows.keep([jobs[0], jobs[2]])
    assert torch.equal(jobs[1].best_image, starts[1])
    assert jobs[1].best_image.untyped_storage().nbytes() == starts[1].untyped_storage().nbytes()
    assert torch.equal(jobs[2].best_image, starts[2]) and rows.members == (0, 2)
