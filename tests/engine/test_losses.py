"""Losses and Gram matrices on tensors whose answers are known by hand."""

import torch

from nst_engine.losses import content_loss, gram, style_loss, tv_loss


def test_gram_of_known_features():
    # Two channels over four positions: [1, 2, 3, 4] and [1, 0, 1, 0].
    features = torch.tensor([[1.0, 2, 3, 4], [1, 0, 1, 0]]).view(1, 2, 2, 2)
    expected = torch.tensor([[30.0, 4], [4, 2]]) / 4  # F Fᵀ averaged over the 4 positions
    assert torch.allclose(gram(features)[0], expected)


def test_gram_is_batched_and_size_independent():
    torch.manual_seed(0)
    small = torch.rand(2, 3, 4, 4)
    tiled = small.repeat(1, 1, 2, 2)  # same statistics over four times the positions
    assert gram(small).shape == (2, 3, 3)
    assert torch.allclose(gram(small), gram(tiled), atol=1e-6)


def test_gram_of_low_precision_features_is_fp32():
    features = torch.rand(1, 4, 3, 3).to(torch.bfloat16)
    assert gram(features).dtype == torch.float32


def test_style_loss_is_normalised_by_target():
    target = torch.tensor([[[2.0, 0], [0, 2]]])
    current = torch.tensor([[[1.0, 0], [0, 1]]])
    # error = 1 + 1 = 2; target norm² = 8.
    assert torch.allclose(style_loss(current, target), torch.tensor([0.25]))
    # Scaling both by 10 (a network with larger activations) leaves the loss unchanged.
    assert torch.allclose(style_loss(current * 10, target * 10), torch.tensor([0.25]))
    assert style_loss(target, target).item() == 0


def test_content_loss_is_normalised_per_image():
    target = torch.ones(2, 1, 2, 2)
    current = torch.stack([torch.ones(1, 2, 2), torch.zeros(1, 2, 2)])
    assert torch.allclose(content_loss(current, target), torch.tensor([0.0, 1.0]))


def test_tv_loss_of_flat_and_striped_images():
    flat = torch.full((1, 3, 4, 4), 0.5)
    assert tv_loss(flat).item() == 0
    stripes = torch.zeros(1, 1, 2, 4)
    stripes[..., 1::2] = 1.0  # every horizontal neighbour differs by 1, vertical ones by 0
    assert torch.allclose(tv_loss(stripes), torch.tensor([1.0]))
