"""The batched Adam (nst_engine/adam.py) against torch.optim.Adam: each row, with its own learning rate, follows
the path torch gives its job alone (stepped, then clamped to 0..1, as the engine did), and a row that leaves the
batch changes nothing for the others."""

from __future__ import annotations

import pytest
import torch

from nst_engine.adam import BatchedAdam

pytestmark = pytest.mark.usefixtures("float64")
SIZE = 30
RATES = [0.05, 0.01, 0.2]


def gradient(images: torch.Tensor) -> torch.Tensor:
    """Of a quartic per row, whose minimum lies partly outside 0..1, so the clamp matters."""
    target = torch.linspace(-0.3, 1.3, SIZE)
    return 2 * (images - target) + 4 * (images - target).pow(3)


def torch_path(start: torch.Tensor, rate: float, steps: int) -> torch.Tensor:
    image = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=rate)
    for _ in range(steps):
        image.grad = gradient(image.detach())
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    return image.detach()


def test_each_row_follows_torch_adam_with_its_own_rate():
    start = torch.rand(3, SIZE, generator=torch.Generator().manual_seed(0))
    optimizer, images = BatchedAdam(RATES, SIZE, device=torch.device("cpu")), start.clone()
    for _ in range(40):
        images = optimizer.step(images, gradient(images))
    for row, rate in enumerate(RATES):
        alone = torch_path(start[row], rate, 40)
        assert torch.allclose(images[row], alone, atol=1e-12), (row, (images[row] - alone).abs().max())
    assert images.min() == 0 and images.max() == 1  # the clamp held the rows whose minimum lies outside
    assert not torch.allclose(images[0], images[1], atol=1e-3)  # the rates mattered


def test_a_row_that_leaves_changes_nothing_for_the_rows_that_stay():
    start = torch.rand(3, SIZE, generator=torch.Generator().manual_seed(1))
    optimizer, images = BatchedAdam(RATES, SIZE, device=torch.device("cpu")), start.clone()
    for step in range(25):
        if step == 10:
            kept = torch.tensor([0, 2])
            optimizer.keep(kept)
            images = images[kept]
        images = optimizer.step(images, gradient(images))
    for row, original in enumerate((0, 2)):
        assert torch.allclose(images[row], torch_path(start[original], RATES[original], 25), atol=1e-12)
