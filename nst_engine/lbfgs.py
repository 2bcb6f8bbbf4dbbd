"""L-BFGS for a batch of jobs: every job keeps its own memory, and one step of the whole batch is a fixed set of
tensor operations that never waits on the device.

Why: ``torch.optim.LBFGS`` steps one job at a time, and reads its dot products back to the host (``alpha=`` a
tensor, ``if ys > 1e-10``): with k remembered pairs about 12k operations and 5k host synchronisations per job and
step (benchmarks/optimizer.py), B times over for a batch. On a GPU, where the engine's batched iterations were
launch- and overhead-bound (benchmarks/README.md, "On a GPU"), each is a launch or a wait. Here the B jobs are
rows of one tensor: the same recursion is about 9k operations for the whole batch, and nothing is read back.

It is ``torch.optim.LBFGS`` with ``max_iter=1`` and no line search (one evaluation per step, which the engine
makes for the whole batch), followed by the engine's trust region and the clamp to 0..1 (``nst_engine/transfer.py``).
One difference: torch skips a pair whose curvature ``y·s`` is not above 1e-10, while here it is stored with weight
0, which makes it a no-op in the recursion but takes a slot; since every step fills one slot and a scale keeps
as many slots as it has steps, no pair torch would keep is dropped.
"""

from __future__ import annotations

import math

import torch

TOLERANCE_GRAD = 1e-7  # torch.optim.LBFGS's defaults: a job whose gradient is this flat does not move
TOLERANCE_CHANGE = 1e-9  # ... nor one whose direction does not descend by more than this
CURVATURE_MIN = 1e-10  # ... and a pair with no more curvature than this is not remembered


class BatchedLBFGS:
    """L-BFGS state for ``rows`` jobs of ``size`` pixel values each, remembering up to ``capacity`` pairs. Per-row
    numbers are kept as columns (rows × 1), so they scale the rows without a reshape per use."""

    def __init__(self, rows: int, size: int, capacity: int, *, device: torch.device,
                 dtype: torch.dtype = torch.float32, lr: float = 1.0, max_step_rms: float = float("inf")) -> None:
        self.capacity, self.lr, self.max_step_rms = max(capacity, 1), lr, max_step_rms
        zeros = dict(device=device, dtype=dtype)
        self.steps = torch.zeros(self.capacity, rows, size, **zeros)  # s: the steps taken
        self.changes = torch.zeros(self.capacity, rows, size, **zeros)  # y: the gradient changes they made
        self.weights = torch.zeros(self.capacity, rows, 1, **zeros)  # 1 / (y·s); 0: no pair in the slot
        self.diagonal = torch.ones(rows, 1, **zeros)  # the initial inverse Hessian's scale, y·s / y·y
        self.direction = torch.zeros(rows, size, **zeros)
        self.length = torch.zeros(rows, 1, **zeros)  # the step length taken along ``direction``
        self.previous_gradient = torch.zeros(rows, size, **zeros)
        self.started = torch.zeros(rows, 1, dtype=torch.bool, device=device)  # a job with a step behind it
        # Host-side counts, so no step reads the device: the next slot, the slots ever written, the steps made.
        self.head, self.filled, self.taken = 0, 0, 0
        self._slot_views()

    def _slot_views(self) -> None:
        self.slots = list(zip(self.steps.unbind(0), self.changes.unbind(0), self.weights.unbind(0)))

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows (job positions) from now on: the jobs that left the batch are dropped."""
        for name in ("steps", "changes", "weights"):
            setattr(self, name, getattr(self, name).index_select(1, rows))
        for name in ("diagonal", "direction", "length", "previous_gradient", "started"):
            setattr(self, name, getattr(self, name).index_select(0, rows))
        self._slot_views()

    def forget(self, rows: torch.Tensor) -> None:
        """A fresh memory for these rows (a bool mask): their next step is a first step."""
        rows = rows[:, None]
        self.weights.masked_fill_(rows, 0.0)
        self.diagonal.masked_fill_(rows, 1.0)
        self.started &= ~rows

    @torch.no_grad()
    def step(self, images: torch.Tensor, gradients: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
        """The images after one step (rows × size), from their gradients (kept until the next step); rows in the
        bool mask ``frozen`` neither move nor add to their memory."""
        flat = torch.linalg.vector_norm(gradients, math.inf, dim=1, keepdim=True) <= TOLERANCE_GRAD
        moving = ~(flat | frozen[:, None])
        if self.taken:
            self._remember(gradients, moving & self.started)
        self.taken += 1
        direction = self._direction(gradients)
        first_length = torch.linalg.vector_norm(gradients, 1, dim=1, keepdim=True).reciprocal_().clamp_(max=1.0)
        length = torch.where(self.started, 1.0, first_length).mul_(self.lr)
        descends = _dot(gradients, direction) <= -TOLERANCE_CHANGE
        step = direction * (length * (moving & descends))
        # The trust region: a step longer than max_step_rms (root mean square per pixel value) is shortened to it,
        # and the length remembered with it, so the next pair is the step taken.
        rms = torch.linalg.vector_norm(step, dim=1, keepdim=True) / math.sqrt(step.shape[1])
        factor = (self.max_step_rms / rms).clamp_(max=1.0)  # a row that does not move: inf, so 1
        moved = torch.addcmul(images, step, factor).clamp_(0, 1)
        # A row that did not move keeps its length; its direction and gradient are never read again (a frozen row
        # has forgotten them, a flat one stays where it is with the same gradient), so they are not kept apart.
        self.direction, self.previous_gradient = direction, gradients
        self.length = torch.where(moving, length * factor, self.length)
        self.started |= moving
        return moved

    def _remember(self, gradients: torch.Tensor, rows: torch.Tensor) -> None:
        """The pair of the last step (s, y) into the next slot, weighted for ``rows`` and 0 for the others."""
        taken, change, weight = self.slots[self.head]
        torch.sub(gradients, self.previous_gradient, out=change)
        torch.mul(self.direction, self.length, out=taken)
        curvature = _dot(change, taken)
        stored = rows & (curvature > CURVATURE_MIN)
        weight.copy_(torch.where(stored, curvature.reciprocal(), 0.0))
        self.diagonal = torch.where(stored, curvature / _dot(change, change), self.diagonal)
        self.head = (self.head + 1) % self.capacity
        self.filled = min(self.filled + 1, self.capacity)

    def _direction(self, gradients: torch.Tensor) -> torch.Tensor:
        """The two-loop recursion, newest pair first, for every row at once: minus the inverse Hessian estimate
        times the gradient (minus the gradient itself for a row with no pairs)."""
        newest_first = [self.slots[(self.head - 1 - k) % self.capacity] for k in range(self.filled)]
        q = gradients.neg()
        alphas = []
        for taken, change, weight in newest_first:
            alpha = weight * _dot(taken, q)
            q.addcmul_(alpha, change, value=-1.0)
            alphas.append(alpha)
        r = q.mul_(self.diagonal)
        for (taken, change, weight), alpha in zip(reversed(newest_first), reversed(alphas)):
            r.addcmul_(alpha - weight * _dot(change, r), taken)
        return r


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The rows' dot products, as a column: ``linalg.vecdot``, one kernel for the batch, on a GPU. On the CPU it
    makes a temporary product and took up to 2x as long as one BLAS ``dot`` per row (2-core AMD EPYC,
    benchmarks/optimizer.py)."""
    if a.device.type != "cpu":
        return torch.linalg.vecdot(a, b).unsqueeze(1)
    if len(a) == 1:  # the CPU's usual batch: one call
        return a[0].dot(b[0]).view(1, 1)
    return torch.stack([row.dot(other) for row, other in zip(a, b)]).unsqueeze(1)
