"""Losses and Gram matrices on tensors whose answers are known by hand."""

import pytest
import torch

from torch.utils._python_dispatch import TorchDispatchMode

from nst_engine import losses
from nst_engine.losses import content_loss, edge_loss, edge_profile, gram, style_loss, tv_loss
from nst_engine.network import FramedMap


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


def _frame_crop(features: torch.Tensor) -> torch.Tensor:
    """A crop of a framed map, as nst_engine/network.py hands the losses."""
    return features[..., 2:7, 1:9]


@pytest.mark.parametrize("layout, view", [(torch.contiguous_format, torch.clone), (torch.channels_last, torch.clone),
                                          (torch.channels_last, _frame_crop)], ids=["nchw", "channels_last", "crop"])
def test_gram_gradient_in_every_layout(layout: torch.memory_format, view) -> None:
    torch.manual_seed(0)
    source = torch.rand(2, 4, 9, 11, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda tensor: gram(view(tensor)), (source,))
    features = view(source)
    assert torch.allclose(gram(features), gram(features.contiguous()))
    # The gradient comes back in the map's own layout: no conversion for the layers below.
    handed_back: list[torch.Tensor] = []
    features.register_hook(handed_back.append)
    gram(features).sum().backward()
    assert handed_back[0].is_contiguous(memory_format=layout)


def test_gram_keeps_only_the_map_for_backward():
    # Autograd's matmul would keep a flattened copy of a cropped map (about 100 MB at 512 px, benchmarks/README.md);
    # every tensor saved for the backward pass must share the framed map's memory, or be small.
    torch.manual_seed(1)
    framed = torch.rand(2, 4, 9, 11).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    saved: list[torch.Tensor] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        result = gram(_frame_crop(framed))
    own = [t for t in saved if t.untyped_storage().data_ptr() != framed.untyped_storage().data_ptr()]
    assert sum(t.numel() * t.element_size() for t in own) < _frame_crop(framed).numel(), [t.shape for t in own]
    result.sum().backward()
    assert framed.grad[..., :2, :].abs().sum() == 0 and _frame_crop(framed.grad).abs().sum() > 0


def test_gram_of_low_precision_features_passes_gradient_in_their_precision():
    features = torch.rand(1, 4, 5, 5).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    leaf = features[..., 1:4, 1:4].detach().requires_grad_(True)
    gram(leaf).sum().backward()
    assert leaf.grad.dtype == torch.bfloat16


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


def _framed(tensor: torch.Tensor) -> FramedMap:
    return FramedMap(tensor, (2, 7), (1, 9))


def test_gram_of_a_framed_map_is_the_gram_of_its_crop():
    torch.manual_seed(2)
    source = torch.rand(2, 4, 9, 11, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    source.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda tensor: gram(_framed(tensor)), (source,))
    assert torch.allclose(gram(_framed(source)), gram(_frame_crop(source)))
    whole = FramedMap(source, (0, 9), (0, 11))
    assert torch.allclose(gram(whole), gram(source))


class _BigWrites(TorchDispatchMode):
    """Names the ops that copy or fill a tensor at least ``numel`` elements large."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.seen = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__
        if any(word in name for word in ("copy", "clone", "fill", "zero", "contiguous", "new_zeros")):
            results = out if isinstance(out, (tuple, list)) else [out]
            if any(isinstance(t, torch.Tensor) and t.numel() >= self.numel for t in results):
                self.seen.append(name)
        return out


def test_gram_of_a_framed_map_copies_and_fills_nothing_of_map_size():
    """The crop's view costs a full copy to flatten and, backward, a zero-filled map for its gradient; the framed
    path reads the whole map as a view and zeroes only the frame strips of its gradient."""
    framed = torch.rand(1, 8, 20, 24).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    rows, cols = (2, 18), (2, 22)
    crop_numel = 8 * 16 * 20  # each frame strip is smaller
    with _BigWrites(crop_numel) as before:
        torch.autograd.grad(gram(framed[..., 2:18, 2:22]).sum(), framed)
    with _BigWrites(crop_numel) as now:
        torch.autograd.grad(gram(FramedMap(framed, rows, cols)).sum(), framed)
    assert before.seen, "the probe saw none of the crop path's copies"
    assert not now.seen, now.seen


def test_gram_of_a_low_precision_framed_map_is_fp32_from_chunks_without_map_size_copies(monkeypatch):
    """bf16 maps used to be cropped and raised to fp32 whole (two map-size copies forward, a zero-filled map and
    a cast backward); now a few rows at a time are multiplied in bf16 and summed in fp32: each chunk's sum is
    rounded once, far less than one bf16 product of the whole crop would."""
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 8 * 20 * 3, raising=False)  # three rows of the crop per chunk
    torch.manual_seed(3)
    values = torch.randn(2, 8, 20, 24).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    rows, cols = (2, 18), (2, 22)
    framed = values.clone().requires_grad_(True)
    exact = values.float().requires_grad_(True)  # the same numbers in fp32: the old path's products
    weights = torch.randn(2, 8, 8)
    with _BigWrites(8 * 16 * 20) as writes:
        result = gram(FramedMap(framed, rows, cols))
        (result * weights).sum().backward()
    expected = gram(exact[..., 2:18, 2:22])
    (expected * weights).sum().backward()
    assert not writes.seen, writes.seen
    assert result.dtype == torch.float32
    flat = values[..., 2:18, 2:22].flatten(2)  # the whole crop as one bf16 product: its sum rounded once
    whole_in_bf16 = torch.bmm(flat, flat.transpose(1, 2)).float() / flat.shape[2]
    assert _relative_error(result, expected) < _relative_error(whole_in_bf16, expected) < 5e-3
    assert framed.grad.dtype == torch.bfloat16 and framed.grad.is_contiguous(memory_format=torch.channels_last)
    assert framed.grad[..., :2, :].abs().sum() == 0 and framed.grad[..., :, 22:].abs().sum() == 0
    assert torch.allclose(framed.grad.float(), exact.grad, rtol=1e-2, atol=1e-4)  # bf16 rounding of the same
    crop = values.clone().requires_grad_(True)  # a plain crop view takes the same path
    assert torch.equal(gram(crop[..., 2:18, 2:22]), result.detach())


def _relative_error(result: torch.Tensor, expected: torch.Tensor) -> float:
    return float((result.detach() - expected.detach()).norm() / expected.detach().norm())


def test_gram_of_fp16_maps_whose_chunk_sums_pass_fp16s_range_stays_finite():
    """Activations of 40 over a few thousand positions sum past fp16's 65504: fp16 maps are multiplied in fp32."""
    values = torch.full((1, 4, 40, 40), 40.0).to(torch.float16).contiguous(memory_format=torch.channels_last)
    framed = values.clone().requires_grad_(True)
    result = gram(FramedMap(framed, (0, 40), (0, 40)))
    result.sum().backward()
    assert torch.allclose(result, torch.full((1, 4, 4), 1600.0))
    assert torch.isfinite(framed.grad).all() and framed.grad.abs().min() > 0


@pytest.mark.parametrize("side, rows", [(0, (slice(0, 2), slice(None))), (1, (slice(-2, None), slice(None))),
                                        (2, (slice(None), slice(0, 2))), (3, (slice(None), slice(-2, None)))])
def test_edge_profile_finds_a_band_on_its_own_side(side, rows):
    image = torch.full((1, 3, 24, 32), 0.5)
    image[(..., *rows)] = 0.1  # a dark band two rows deep along one side
    profile = edge_profile(image, 4)
    assert profile.shape == (1, 3, 4, 4)
    assert torch.allclose(profile[0, :, side, :2], torch.tensor(-0.4)) and profile[0, :, side, 2:].abs().max() < 1e-6
    others = [index for index in range(4) if index != side]
    # the band's ends reach into the two sides across it (their rows run through it), by its share of them
    assert profile[0, :, others, :].abs().max() < 0.06


def test_edge_loss_costs_a_band_but_not_the_contents_own_gradient_or_texture_along_the_side():
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 48).view(1, 1, 48, 1).expand(1, 3, 48, 64)  # a sky darkening to the top
    target = edge_profile(ramp, 8)
    assert edge_loss(ramp, target, 0.0) == 0  # the content's own profile is free
    banded = ramp.clone()
    banded[..., :4, :] -= 0.2
    assert edge_loss(banded, target, 0.0) > 1e-3
    # a checkerboard (texture along every side) leaves each row's and column's mean as it was
    checks = (torch.arange(48).view(48, 1) + torch.arange(64).view(1, 64)) % 2
    assert edge_loss(ramp + 0.2 * checks - 0.1, target, 0.0) < 1e-9
    # a wobble of the row means under the tolerance is left alone, one over it is not
    wobble = ramp + 0.005 * torch.randn(1, 3, 48, 1, generator=generator)
    assert edge_loss(wobble, target, 0.02) == 0 and edge_loss(wobble, target, 0.0) > 0


def test_edge_loss_of_a_picture_too_small_for_a_profile_is_zero():
    image = torch.rand(2, 3, 3, 3)
    loss = edge_loss(image, edge_profile(image, 0), 0.01)
    assert loss.shape == (2,) and not loss.any()
