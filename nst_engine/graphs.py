"""A batch's iteration captured once in a CUDA graph and replayed: one launch instead of about 400.

Why: on an H200 a 512×384 iteration took 7–11 ms against a 0.29 ms FLOP floor, launch- and Python-bound
(benchmarks/README.md, "On a GPU"). ``Engine(cuda_graphs=True)`` turns it on; it stays off by default until it has
been measured on a GPU (``python benchmarks/gpu.py --only graphs``).

What a captured iteration must be, and nst_engine/transfer.py's ``_Rows``, nst_engine/lbfgs.py (``static``) and
nst_engine/adam.py make it: the same operations on the same shapes every time, nothing read back to the host,
every piece of state updated in place, and autocast's cache of cast weights off (a cast made at capture would
live outside the graph). tests/engine/test_graphs.py checks all of that on the CPU, with a stand-in that records
the operations of one iteration and replays them on the same tensors.
"""

from __future__ import annotations

from typing import Callable

import torch

WARM_UP = 2  # eager iterations before the capture: libraries' lazy set-up (cuBLAS workspaces) stays out of it

Advance = Callable[[], torch.Tensor]  # one iteration; returns the batch's loss values


class IterationGraph:
    """Runs a batch's iterations: ``WARM_UP`` eagerly, then one captured (and run), then replays of it."""

    def __init__(self) -> None:
        self.warm, self.outputs = 0, None

    def run(self, advance: Advance) -> torch.Tensor:
        if self.warm < WARM_UP:
            self.warm += 1
            return self.warm_up(advance)
        if self.outputs is None:
            self.outputs = self.capture(advance)
        else:
            self.replay()
        return self.outputs

    def warm_up(self, advance: Advance) -> torch.Tensor:
        return advance()

    def capture(self, advance: Advance) -> torch.Tensor:
        """Records ``advance`` and runs it once; returns its outputs, which every replay overwrites."""
        raise NotImplementedError

    def replay(self) -> None:
        raise NotImplementedError


class CudaIterationGraph(IterationGraph):
    """``torch.cuda.CUDAGraph``; the warm-up runs on a side stream, as capture requires of what it will record."""

    def __init__(self) -> None:
        super().__init__()
        self.graph = torch.cuda.CUDAGraph()
        self.stream = torch.cuda.Stream()

    def warm_up(self, advance: Advance) -> torch.Tensor:
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            outputs = advance()
        torch.cuda.current_stream().wait_stream(self.stream)
        return outputs

    def capture(self, advance: Advance) -> torch.Tensor:
        with torch.cuda.graph(self.graph):
            outputs = advance()
        self.graph.replay()  # capturing ran nothing
        return outputs

    def replay(self) -> None:
        self.graph.replay()
