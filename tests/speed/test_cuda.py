"""The engine on a CUDA GPU, where there is one (CI has none: these are skipped there and run on a lent GPU).

A GPU picks convolution algorithms per shape and batch size and runs in bf16 or fp16, so a
job's result is reproducible only up to rounding that L-BFGS amplifies; what must hold is that every path
finishes with a finite, stylised picture, that a batched step is the step a job takes alone, and that
cancellation stops a job within one iteration as on the CPU.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from nst_engine import graphs
from nst_engine.options import StylizeOptions
from nst_engine.transfer import BatchRequest, Engine
from tests.conftest import make_content, make_style

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = dict(size=96, min_scale=48, iterations=20, device="cuda")


@pytest.fixture(scope="module")
def engine(vgg_weights) -> Engine:
    return Engine(str(vgg_weights))


def distance(a, b) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16", "fp16"])
def test_every_precision_stylises(engine, precision):
    content = make_content()
    result = engine.stylize(content, [make_style(64, seed=1)], StylizeOptions(**SMALL, precision=precision))
    assert result.device.startswith("cuda") and result.error is None and result.iterations == 20
    assert all(np.isfinite(value) for value in result.losses.values())
    start = engine.stylize(content, [make_style(64, seed=1)], StylizeOptions(**{**SMALL, "iterations": 1},
                                                                              precision=precision))
    assert result.losses["style"] < 0.7 * start.losses["style"]  # the style really moved


def test_a_batched_step_is_the_step_taken_alone(engine):
    """Each image's gradient is its own in a batch: after one step the pictures agree to well under a grey
    level. (Over many iterations L-BFGS amplifies the rounding of batch-size-dependent convolution algorithms,
    so longer runs agree only in how far they get.)"""
    content = make_content()
    requests = [BatchRequest(content, [make_style(64, seed=1)], StylizeOptions(**{**SMALL, "iterations": 2})),
                BatchRequest(content, [make_style(64, seed=5)],
                             StylizeOptions(**{**SMALL, "iterations": 2}, strength=3.0, seed=9))]
    batched = engine.stylize_batch(requests)
    alone = [engine.stylize(r.content, r.styles, r.options) for r in requests]
    assert [r.batch_size for r in batched] == [2, 2]
    for together, single in zip(batched, alone):
        assert distance(together.image, single.image) < 1.0
        assert together.losses["total"] == pytest.approx(single.losses["total"], rel=0.02)
    assert distance(batched[0].image, batched[1].image) > 2


def test_a_cancelled_job_stops_within_one_iteration(engine):
    content = make_content()
    requests = [BatchRequest(content, [make_style(64, seed=s)], StylizeOptions(**SMALL)) for s in (1, 5)]
    seen: dict[int, list[int]] = {0: [], 1: []}
    results = engine.stylize_batch(requests, on_progress=lambda i, p: seen[i].append(p.iteration),
                                   should_stop=lambda i: i == 1 and len(seen[1]) >= 3)
    assert results[1].cancelled and results[1].iterations == 3 and seen[1] == [1, 2, 3]
    assert not results[0].cancelled and results[0].iterations == 20


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_low_precision_gram_on_the_gpu_is_one_fp32_product_of_the_crop(dtype):
    """nst_engine/losses.py's _LowPrecisionGram takes bmm's fp32 result on CUDA instead of chunks: the Gram of a
    framed bf16/fp16 map matches float64 arithmetic on the same values to fp32 rounding (activations of 40 would
    overflow an fp16 result), its gradient to the backward's one low-precision product, and the frame gets none."""
    from nst_engine.losses import gram
    from nst_engine.network import FramedMap

    generator = torch.Generator(device="cuda").manual_seed(0)
    full = (torch.rand(2, 64, 40, 56, device="cuda", generator=generator) * 40).to(dtype)
    full = full.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    framed = FramedMap(full, (3, 37), (3, 53))
    result = gram(framed)
    reference = framed.crop.detach().double().requires_grad_(True)
    expected = torch.einsum("nchw,ndhw->ncd", reference, reference) / (34 * 50)
    assert result.dtype == torch.float32 and torch.isfinite(result).all()
    assert float((result.double() - expected).abs().max() / expected.abs().max()) < 1e-5
    weights = torch.rand(2, 64, 64, device="cuda", generator=generator)
    (result * weights).sum().backward()
    (expected * weights.double()).sum().backward()
    grad_crop = full.grad[..., 3:37, 3:53].double()
    assert float((grad_crop - reference.grad).abs().max() / reference.grad.abs().max()) < 2e-2
    assert float(full.grad[..., :3, :].abs().max()) == 0


def test_a_batched_lbfgs_step_never_waits_on_the_gpu():
    """nst_engine/lbfgs.py on the device: torch's sync debug mode raises on any host synchronisation, so a step
    of 8 rows with pairs in memory, a frozen row among them, must run through without one and move the others."""
    from nst_engine.lbfgs import BatchedLBFGS

    device = torch.device("cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    curvature = torch.rand(8, 3000, device=device, generator=generator) + 0.5
    target = torch.rand(8, 3000, device=device, generator=generator)
    images = torch.rand(8, 3000, device=device, generator=generator)
    optimizer = BatchedLBFGS(8, 3000, 10, device=device, max_step_rms=0.1)
    frozen = torch.zeros(8, dtype=torch.bool, device=device)
    for _ in range(4):
        images = optimizer.step(images, curvature * (images - target), frozen)
    frozen[3] = True
    start = images.clone()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        optimizer.forget(frozen)
        images = optimizer.step(images, curvature * (images - target), frozen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    moved = (images - start).abs().amax(1).cpu()
    assert moved[3] == 0 and bool((moved[torch.arange(8) != 3] > 0).all())


def test_iterations_replayed_from_cuda_graphs_follow_the_eager_ones(engine, vgg_weights):
    """``Engine(cuda_graphs=True)`` (nst_engine/graphs.py; tests/engine/test_graphs.py checks the replay on the CPU
    with a stand-in): every iteration reported, the first ones' losses as the eager engine's to rounding, a job
    leaving the batch mid-scale (a new capture for the other), a finite, stylised result."""
    graphed = Engine(str(vgg_weights), cuda_graphs=True)
    content = make_content()
    requests = [BatchRequest(content, [make_style(64, seed=s)], StylizeOptions(**SMALL, seed=s)) for s in (1, 5)]
    totals: dict[str, dict[int, list[float]]] = {}
    results = {}
    for name, each in (("eager", engine), ("graphs", graphed)):
        seen: dict[int, list[float]] = {0: [], 1: []}
        totals[name] = seen
        results[name] = each.stylize_batch(requests, on_progress=lambda i, p, seen=seen: seen[i].append(
            p.losses["total"]), should_stop=lambda i, seen=seen: i == 1 and len(seen[1]) >= 12)
    for name in results:
        assert [r.iterations for r in results[name]] == [20, 12] and results[name][1].cancelled, name
    assert totals["graphs"][0][:6] == pytest.approx(totals["eager"][0][:6], rel=0.02)
    assert all(np.isfinite(totals["graphs"][0])) and totals["graphs"][0][-1] < 0.7 * totals["graphs"][0][0]
    assert results["graphs"][0].error is None


class _SyncsInCapture(graphs.CudaIterationGraph):
    """Fails its capture as a library's hidden read back would: after the whole iteration has been recorded."""

    def capture(self, advance):
        return super().capture(lambda: advance().sum().item())


def test_a_failed_cuda_capture_leaves_the_job_to_run_eagerly(engine, vgg_weights, caplog):
    """nst_engine/graphs.py: the iteration whose capture failed runs again eagerly (the capture ran none of its
    writes), the rest of the job and every later one run eagerly, and the current stream is the one before."""
    failing = Engine(str(vgg_weights), cuda_graphs=True)
    failing.capturing = graphs.Capturing(_SyncsInCapture)
    request = BatchRequest(make_content(), [make_style(64, seed=1)], StylizeOptions(**SMALL))
    stream = torch.cuda.current_stream()
    totals: dict[str, list[float]] = {"failing": [], "eager": []}
    with caplog.at_level(logging.WARNING, logger=graphs.__name__):
        for name, each in (("failing", failing), ("eager", engine)):
            [result] = each.stylize_batch([request], on_progress=lambda i, p, seen=totals[name]: seen.append(
                p.losses["total"]))
            assert result.error is None and result.iterations == 20, name
    assert torch.cuda.current_stream() == stream and failing.capturing.failed
    assert len(caplog.records) == 1 and failing.iteration_graphs(torch.device("cuda")) is None
    assert totals["failing"][:6] == pytest.approx(totals["eager"][:6], rel=0.02)
    assert all(np.isfinite(totals["failing"])) and totals["failing"][-1] < 0.7 * totals["failing"][0]
