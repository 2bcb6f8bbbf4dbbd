"""Adam for a batch of jobs, each row with its own learning rate: ``torch.optim.Adam`` with its defaults, then the
clamp to 0..1, as a job alone would step (tests/engine/test_adam.py).

Why not torch's: it takes one learning rate per parameter, and the batch's jobs are rows of one tensor. Adam is
elementwise, so a row moves exactly as its job would alone; the step count lives on the device and every update is
in place, so a CUDA graph that captured one step replays the next (nst_engine/graphs.py).
"""

from __future__ import annotations

import torch

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPSILON = 1e-8


class BatchedAdam:
    """Adam state for ``len(rates)`` jobs of ``size`` pixel values each; ``rates`` are their learning rates."""

    def __init__(self, rates: list[float], size: int, *, device: torch.device) -> None:
        rows = len(rates)
        self.rates = torch.tensor(rates, device=device)[:, None]
        self.average = torch.zeros(rows, size, device=device)
        self.average_square = torch.zeros(rows, size, device=device)
        self.steps = torch.zeros((), device=device)

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows (job positions) from now on."""
        for name in ("rates", "average", "average_square"):
            setattr(self, name, getattr(self, name).index_select(0, rows))

    @torch.no_grad()
    def step(self, images: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """The images after one step (rows × size), clamped to 0..1."""
        first, second = BETAS
        self.average.lerp_(gradients, 1 - first)
        self.average_square.mul_(second).addcmul_(gradients, gradients, value=1 - second)
        self.steps += 1
        step_size = self.rates / (1 - first ** self.steps)
        denominator = (self.average_square.sqrt() / (1 - second ** self.steps).sqrt()).add_(EPSILON)
        return images.addcdiv(self.average * step_size, denominator, value=-1).clamp_(0, 1)
