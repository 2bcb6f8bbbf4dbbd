"""L-BFGS for a batch of jobs: every job keeps its own memory, and one step of the whole batch is a fixed set of
tensor operations, however many pairs it remembers, that never waits on the device.

Why: ``torch.optim.LBFGS`` steps one job at a time, and reads its dot products back to the host (``alpha=`` a
tensor, ``if ys > 1e-10``): with k remembered pairs about 12k operations and 5k host synchronisations per job and
step (benchmarks/optimizer.py), B times over for a batch. On a GPU, where the engine's batched iterations were
launch- and overhead-bound (benchmarks/README.md, "On a GPU"), each is a launch or a wait. Here the B jobs are rows
of one tensor, and the inverse Hessian estimate is applied in its compact form (Byrd, Nocedal and Schnabel, 1994)
instead of the two-loop recursion, which takes two operations per pair and loop: with S and Y the remembered steps
and gradient changes (oldest first), R the upper triangle of SᵀY, D its diagonal and γ the initial scale,

    H g = γ g + S q − γ Y p,   p = R⁻¹ Sᵀg,   q = R⁻ᵀ ((D + γ YᵀY) p − γ Yᵀg),

the same estimate in exact arithmetic. The m × m products SᵀY and YᵀY are kept up to date one slot at a time, so a
step reads the history three times (the new slot's products, Sᵀg and Yᵀg, the direction), against the two-loop's
four, in about 50 operations for any batch and memory.

It is ``torch.optim.LBFGS`` with ``max_iter=1`` and no line search (one evaluation per step, which the engine
makes for the whole batch), followed by the engine's trust region and the clamp to 0..1 (``nst_engine/transfer.py``),
with torch's memory: a pair without curvature (``y·s`` not above 1e-10) is not remembered, and a full memory drops
its oldest pair; each row has its own ring of slots and head for that.

Every step updates the state in place, so a CUDA graph that captured one step replays the next on the same tensors
(nst_engine/graphs.py). ``static=True`` makes every step read all slots, written or not, instead of only those
written so far: the same operations on the same shapes from the first step on, which such a graph needs; the
unwritten slots are zeros outside every row's memory, so they drop out (tests/engine/test_lbfgs.py).
"""

from __future__ import annotations

import math

import torch

TOLERANCE_GRAD = 1e-7  # torch.optim.LBFGS's defaults: a job whose gradient is this flat does not move
TOLERANCE_CHANGE = 1e-9  # ... nor one whose direction does not descend by more than this
CURVATURE_MIN = 1e-10  # ... and a pair with no more curvature than this is not remembered


class BatchedLBFGS:
    """L-BFGS state for ``rows`` jobs of ``size`` pixel values each, remembering up to ``capacity`` pairs in a ring
    of slots. Per-row numbers are kept as columns (rows × 1), so they scale the rows without a reshape per use."""

    def __init__(self, rows: int, size: int, capacity: int, *, device: torch.device,
                 dtype: torch.dtype = torch.float32, lr: float = 1.0, max_step_rms: float = float("inf"),
                 static: bool = False) -> None:
        self.capacity, self.lr, self.max_step_rms, self.static = max(capacity, 1), lr, max_step_rms, static
        zeros = dict(device=device, dtype=dtype)
        # Per row, a ring of capacity + 1 slots, each a step s and the gradient change y it made, flattened to
        # s₀, y₀, s₁, y₁, ...: the slots written so far are one block, read by one product. One slot per row is
        # always free, for the next pair, so a pair that is not kept costs no copy to undo. Zeros at first: a row's
        # unwritten slots inside that block are multiplied by 0, so they must be finite.
        slots = self.capacity + 1
        self.history = torch.zeros(rows, 2 * slots, size, **zeros)
        self.step_changes = torch.zeros(rows, slots, slots, **zeros)  # [i, j]: s_i · y_j
        self.change_changes = torch.zeros(rows, slots, slots, **zeros)  # [i, j]: y_i · y_j
        self.used = torch.zeros(rows, slots, dtype=torch.bool, device=device)  # the slots in the row's memory
        self.diagonal = torch.ones(rows, 1, **zeros)  # γ, the initial inverse Hessian's scale: y·s / y·y
        self.direction = torch.zeros(rows, size, **zeros)
        self.length = torch.zeros(rows, 1, **zeros)  # the step length taken along ``direction``
        self.previous_gradient = torch.zeros(rows, size, **zeros)
        self.started = torch.zeros(rows, 1, dtype=torch.bool, device=device)  # a job with a step behind it
        self.head = torch.zeros(rows, dtype=torch.long, device=device)  # each row's free slot
        # Counted on the host, so that no step reads the device: the steps made, and the slots any row has written
        # (each row's are the first ones: a row moves on to the next slot only when it keeps a pair); static: all.
        self.taken, self.written = 0, slots if static else 0
        self._rows = torch.arange(rows, device=device)
        self._slots = torch.arange(slots, device=device)
        eye = torch.eye(slots, dtype=torch.bool, device=device)
        self._identity, self._upper = eye, torch.ones_like(eye).triu()

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows (job positions) from now on: the jobs that left the batch are dropped."""
        for name in ("history", "step_changes", "change_changes", "used", "head", "diagonal", "direction", "length",
                     "previous_gradient", "started"):
            setattr(self, name, getattr(self, name).index_select(0, rows))
        self._rows = self._rows[:len(rows)]

    def forget(self, rows: torch.Tensor) -> None:
        """A fresh memory for these rows (a bool mask): their next step is a first step."""
        rows = rows[:, None]
        self.used &= ~rows
        self.diagonal.masked_fill_(rows, 1.0)
        self.started &= ~rows

    @torch.no_grad()
    def step(self, images: torch.Tensor, gradients: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
        """The images after one step (rows × size), from their gradients (kept until the next step); rows in the
        bool mask ``frozen`` neither move nor add to their memory."""
        flat = torch.linalg.vector_norm(gradients, math.inf, dim=1, keepdim=True) <= TOLERANCE_GRAD
        moving = ~(flat | frozen[:, None])
        # The first step's direction is -g either way (no row has a pair, γ is 1); only computed when it must be.
        direction = self._direction(gradients, moving & self.started) if self.taken or self.static else -gradients
        self.taken += 1
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
        self.direction.copy_(direction)
        self.previous_gradient.copy_(gradients)
        self.length.copy_(torch.where(moving, length * factor, self.length))
        self.started |= moving
        return moved

    def _direction(self, gradients: torch.Tensor, remembering: torch.Tensor) -> torch.Tensor:
        """The last step's pair remembered (by the rows in ``remembering``), then minus the inverse Hessian
        estimate times the gradient, for every row at once; the history is read twice."""
        pair = torch.stack([self.direction * self.length, gradients - self.previous_gradient], dim=1)  # rows × 2 × n
        self.history.view(len(pair), -1, *pair.shape[1:])[self._rows, self.head] = pair
        self.written = min(self.written + 1, self.capacity + 1)
        block = self.history[:, :2 * self.written]
        # Every written slot's s and y against the new s and y and the gradient: rows × 2·written × 3.
        products = torch.bmm(block, torch.cat([pair, gradients.unsqueeze(1)], dim=1).transpose(1, 2))
        self._remember(products[..., :2], remembering)
        coefficients = self._coefficients(products[:, 0::2, 2:], products[:, 1::2, 2:])
        return torch.bmm(coefficients, block).squeeze(1).addcmul_(self.diagonal, gradients).neg_()

    def _remember(self, products: torch.Tensor, rows: torch.Tensor) -> None:
        """The new pair, already in each row's free slot, joins the memory of ``rows`` if it has curvature, and
        their next slot (the oldest pair once the memory is full) is freed; ``products`` (rows × 2·written × 2)
        are every written slot's s and y against the new s and y, the slot's row and column of SᵀY and YᵀY."""
        written, each, free = self.written, self._rows, self.head
        steps_by_change, changes_by_step, changes_by_change = (products[:, 0::2, 1], products[:, 1::2, 0],
                                                               products[:, 1::2, 1])
        for matrix, column, row in ((self.step_changes, steps_by_change, changes_by_step),
                                    (self.change_changes, changes_by_change, changes_by_change)):
            matrix[each, :written, free] = column
            matrix[each, free, :written] = row
        curvature = steps_by_change.gather(1, free[:, None])
        stored = rows & (curvature > CURVATURE_MIN)
        self.used.scatter_(1, free[:, None], stored)
        self.diagonal.copy_(torch.where(stored, curvature / changes_by_change.gather(1, free[:, None]), self.diagonal))
        self.head.copy_(torch.where(stored[:, 0], (free + 1) % (self.capacity + 1), free))
        self.used.scatter_(1, self.head[:, None], False)

    def _coefficients(self, steps_g: torch.Tensor, changes_g: torch.Tensor) -> torch.Tensor:
        """The compact form's q and −γ p, interleaved as the history's slots are (rows × 1 × 2·written), from
        Sᵀg and Yᵀg (rows × written × 1). The small algebra runs in each row's time order, oldest slot first (its
        ring turned to start after its free slot), which makes R upper triangular; slots outside a row's memory
        become identity rows and columns of R and zeros elsewhere, so they drop out."""
        written = self.written
        slots = self._slots[:written]
        # [row, k]: the row's k-th oldest slot. Until every slot has been written, no row's ring has turned, and
        # its pairs are in the first slots in time order.
        turn = self.head[:, None] + 1 if written > self.capacity else torch.zeros_like(self.head[:, None])
        order = (turn + slots) % written
        used = self.used[:, :written].gather(1, order)[:, :, None]
        pairs = used & used.transpose(1, 2)
        step_changes, change_changes = (_in_order(matrix[:, :written, :written], order)
                                        for matrix in (self.step_changes, self.change_changes))
        upper = torch.where(self._identity[:written, :written] & ~used, 1.0,
                            torch.where(pairs & self._upper[:written, :written], step_changes, 0.0))
        scale = self.diagonal[:, :, None]
        steps_g, changes_g = (torch.where(used, part.gather(1, order[:, :, None]), 0.0)
                              for part in (steps_g, changes_g))
        p = torch.linalg.solve_triangular(upper, steps_g, upper=True)
        curvature = step_changes.diagonal(dim1=1, dim2=2).unsqueeze(2) * used
        inner = curvature * p + scale * (torch.where(pairs, change_changes, 0.0) @ p - changes_g)
        q = torch.linalg.solve_triangular(upper.transpose(1, 2), inner, upper=False)
        back = (slots - turn) % written  # [row, slot]: the slot's place in the row's order
        in_slots = torch.cat([q, -scale * p], dim=2).gather(1, back[:, :, None].expand(-1, -1, 2))
        return in_slots.view(-1, 1, 2 * written)


def _in_order(matrix: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """A rows × m × m matrix of slot pairs with its rows and columns in each row's ``order``."""
    m = matrix.shape[1]
    rows = matrix.gather(1, order[:, :, None].expand(-1, -1, m))
    return rows.gather(2, order[:, None, :].expand(-1, m, -1))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The rows' dot products, as a column: ``linalg.vecdot``, one kernel for the batch, on a GPU. On the CPU it
    makes a temporary product and took up to 2x as long as one BLAS ``dot`` per row (2-core AMD EPYC,
    benchmarks/optimizer.py)."""
    if a.device.type != "cpu":
        return torch.linalg.vecdot(a, b).unsqueeze(1)
    if len(a) == 1:  # the CPU's usual batch: one call
        return a[0].dot(b[0]).view(1, 1)
    return torch.stack([row.dot(other) for row, other in zip(a, b)]).unsqueeze(1)
