"""Convolution weights kept in oneDNN's layout (nst_engine/packed.py): the same features and input gradients as
``F.conv2d``, and no weight reorder on each call. Real oneDNN kernels, seeded random VGG19."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from nst_engine import packed
from nst_engine.transfer import Engine

pytestmark = pytest.mark.skipif(not packed.available(), reason="this torch build has no oneDNN")
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


def _features_and_gradient(engine: Engine, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    encoder = engine.encoder(torch.device("cpu"), "avg", "relu5_1")
    # Small, as bf16 is emulated (and slow) on AVX2 CPUs; the pools still meet odd sides (5, 7) before relu5_1.
    image = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    image = image.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        features = encoder(image, LAYERS)
    loss = sum(feature.float().pow(2).mean() for feature in features.values())
    loss.backward()
    return loss.detach(), image.grad


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_packed_weights_give_the_features_and_gradients_of_conv2d(vgg_weights, dtype):
    """bf16 runs packed where oneDNN can pack it (AVX-512) and falls back to conv2d elsewhere, alike."""
    loss, grad = _features_and_gradient(Engine(str(vgg_weights)), dtype)
    plain_loss, plain_grad = _features_and_gradient(Engine(str(vgg_weights), packed_weights=False), dtype)
    tolerance = 1e-5 if dtype is None else 2e-2
    assert float(loss) == pytest.approx(float(plain_loss), rel=tolerance)
    assert float((grad - plain_grad).abs().max() / plain_grad.abs().max()) < tolerance


def test_single_convolution_forward_and_input_gradient():
    weight, bias = torch.randn(16, 8, 3, 3), torch.randn(16)
    x = torch.randn(1, 8, 9, 11).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = packed.PackedWeights(weight, bias)(x)
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    reference = x.detach().requires_grad_(True)
    expected = F.conv2d(reference, weight, bias, padding=1)
    (expected_grad,) = torch.autograd.grad(expected, reference, upstream)
    assert torch.allclose(out, expected, atol=1e-4) and torch.allclose(grad, expected_grad, atol=1e-4)


REORDER_PROBE = """
import sys, torch
from nst_engine.transfer import Engine
encoder = Engine(sys.argv[1], packed_weights=sys.argv[2] == "packed").encoder(torch.device("cpu"), "avg", "relu5_1")
image = torch.rand(1, 3, 64, 80).contiguous(memory_format=torch.channels_last).requires_grad_(True)
for attempt in range(2):
    if attempt:
        print("SECOND PASS", flush=True)
    features = encoder(image, ["relu1_1", "relu3_1", "relu5_1"])
    sum(f.pow(2).sum() for f in features.values()).backward()
"""


def _reorders_in_second_pass(vgg_weights, mode: str) -> int:
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", REORDER_PROBE, str(vgg_weights), mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    second = out.split("SECOND PASS", 1)[1].splitlines()
    assert any(",convolution," in line for line in second), "oneDNN ran no convolution"
    return sum(",reorder," in line for line in second)


def test_no_weight_reorder_per_call_once_packed(vgg_weights):
    """The second forward + backward pass at one shape reorders nothing; with plain conv2d oneDNN reorders the
    weights before every convolution (which is what packing removes)."""
    assert _reorders_in_second_pass(vgg_weights, "plain") > 10
    assert _reorders_in_second_pass(vgg_weights, "packed") == 0


def test_a_convolution_with_its_relu_fused_gives_relu_of_conv2d_and_its_gradient():
    """The ReLU runs as oneDNN's post-op; its backward masks the gradient by the fused output."""
    weight, bias = torch.randn(16, 8, 3, 3), torch.randn(16)
    x = torch.randn(1, 8, 9, 11).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = packed.PackedWeights(weight, bias)(x, relu=True)
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    reference = x.detach().requires_grad_(True)
    expected = F.relu(F.conv2d(reference, weight, bias, padding=1))
    (expected_grad,) = torch.autograd.grad(expected, reference, upstream)
    assert (expected == 0).any() and (expected > 0).any()
    assert torch.allclose(out, expected, atol=1e-4) and torch.allclose(grad, expected_grad, atol=1e-4)
