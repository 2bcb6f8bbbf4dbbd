"""A batch's iteration captured once in a CUDA graph and replayed: one launch instead of about 400.

Why: on an H200 a 512×384 iteration took 7–11 ms against a 0.29 ms FLOP floor, launch- and Python-bound
(benchmarks/README.md, "On a GPU"). ``Engine(cuda_graphs=True)`` turns it on; it stays off by default until it has
been measured on a GPU (``python benchmarks/gpu.py --only graphs``).

What a captured iteration must be, and nst_engine/transfer.py's ``_Rows``, nst_engine/lbfgs.py (``static``) and
nst_engine/adam.py make it: the same operations on the same shapes every time, nothing read back to the host,
every piece of state updated in place, and autocast's cache of cast weights off (a cast made at capture would
live outside the graph). tests/engine/test_graphs.py checks all of that on the CPU, with a stand-in that records
the operations of one iteration and replays them on the same tensors.

A capture that fails anyway (a library that syncs where it did not before, a driver that refuses) costs a job
nothing: capturing ran no kernels and the iteration's host-side state is what it was, so the iteration runs again
eagerly and the batch goes on eagerly. The engine then captures nothing more (``Capturing``): a failed capture may
keep its memory pool, and a retry per scale or batch would fail the same way; one warning says so.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

WARM_UP = 2  # eager iterations before the capture: libraries' lazy set-up (cuBLAS workspaces) stays out of it

Advance = Callable[[], torch.Tensor]  # one iteration; returns the batch's loss values

log = logging.getLogger(__name__)


class Capturing:
    """An engine's graphs of one kind, until a capture fails: then none."""

    def __init__(self, kind: type[IterationGraph]) -> None:
        self.kind, self.failed = kind, False

    def new_graph(self) -> IterationGraph | None:
        return None if self.failed else self.kind(self)

    def give_up(self, error: Exception) -> None:
        if not self.failed:
            log.warning("Iterations run eagerly from now on: capturing one in a graph failed (%s)", error)
        self.failed = True


class IterationGraph:
    """Runs a batch's iterations: ``WARM_UP`` eagerly, then one captured (and run), then replays of it; eagerly
    to the end if the capture fails."""

    device_type: str  # the kind of device it captures on

    def __init__(self, capturing: Capturing) -> None:
        self.capturing, self.warm, self.outputs = capturing, 0, None

    def run(self, advance: Advance) -> torch.Tensor:
        if self.warm < WARM_UP or self.capturing.failed:
            self.warm += 1
            return self.warm_up(advance)
        if self.outputs is not None:
            self.replay()
            return self.outputs
        try:
            self.outputs = self.capture(advance)
        except RuntimeError as error:  # torch's CUDA errors are RuntimeErrors
            self.capturing.give_up(error)
            return self.warm_up(advance)
        return self.outputs

    def warm_up(self, advance: Advance) -> torch.Tensor:
        return advance()

    def capture(self, advance: Advance) -> torch.Tensor:
        """Records ``advance`` and runs it once; returns its outputs, which every replay overwrites. A capture
        that raises must have run nothing."""
        raise NotImplementedError

    def replay(self) -> None:
        raise NotImplementedError


class CudaIterationGraph(IterationGraph):
    """``torch.cuda.CUDAGraph``; the warm-up runs on a side stream, as capture requires of what it will record."""

    device_type = "cuda"

    def __init__(self, capturing: Capturing) -> None:
        super().__init__(capturing)
        self.graph = torch.cuda.CUDAGraph()
        self.stream = torch.cuda.Stream()

    def warm_up(self, advance: Advance) -> torch.Tensor:
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            outputs = advance()
        torch.cuda.current_stream().wait_stream(self.stream)
        return outputs

    def capture(self, advance: Advance) -> torch.Tensor:
        # The outer context puts the current stream back even when the capture fails: torch.cuda.graph's exit
        # ends the capture first and leaves its stream current if that raises.
        with torch.cuda.stream(self.stream), torch.cuda.graph(self.graph, stream=self.stream):
            outputs = advance()
        self.graph.replay()  # capturing ran nothing
        return outputs

    def replay(self) -> None:
        self.graph.replay()
