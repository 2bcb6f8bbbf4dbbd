"""A batch's iteration replayed from a graph (nst_engine/graphs.py) gives what it gives run eagerly, on the CPU.

CUDA graphs need a GPU, which CI lacks, so ``torch.cuda.CUDAGraph`` is stood in for by ``RecordedIteration``:
it records the operations one iteration dispatches, with the very tensors they read and wrote, and a replay runs
those operations again on those tensors, Python skipped, each result written where the recorded one lives. Like
a capture, the recording writes no data (an operation that writes runs on copies); then it replays once. That is
what a graph does, so what breaks a captured iteration breaks here too: state that an iteration replaces instead
of updating in place goes stale, shapes or choices made on the host are frozen at the capture, a read back to the
host or a tensor made from host data during the capture fails, and a capture that fails must leave the iteration
to run again eagerly. tests/speed/test_cuda.py runs the real graphs where there is a GPU.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

from nst_engine import graphs
from nst_engine.animation import Animation
from nst_engine.options import StylizeOptions
from nst_engine.testing import ball_scene
from nst_engine.transfer import BatchRequest, Engine
from tests.conftest import make_content, make_style

# 16 iterations at 24 px, 8 at 48 px: each scale has two warm-ups, the capture and replays.
SMALL = dict(size=48, min_scale=24, iterations=24, device="cpu")
# What a capture cannot hold: a read back to the host (``.item()``, ``bool(tensor)``, ``torch.equal``, and what
# sizes its output from the data: ``nonzero``, ``masked_select``, indexing by a boolean mask) or a tensor made from
# host data.
aten = torch.ops.aten
FORBIDDEN = {aten._local_scalar_dense.default, aten.equal.default, aten.nonzero.default, aten.masked_select.default,
             aten.lift_fresh.default, aten.lift_fresh_copy.default}
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


def _without_writes(func, args, kwargs):
    """What ``func`` returns, computed on copies of what it writes: a capture leaves the data as it was."""
    schema = func._schema
    names = [argument.name for argument in schema.arguments]
    written = {argument.name for argument in schema.arguments if argument.alias_info and argument.alias_info.is_write}
    bound = {**dict(zip(names, args)), **kwargs}
    copies = {name: tree_map(lambda value: value.clone() if isinstance(value, torch.Tensor) else value, bound[name])
              for name in written if name in bound}
    results = func(*(copies.get(name, value) for name, value in zip(names, args)),
                   **{name: copies.get(name, value) for name, value in kwargs.items()})
    aliases = {frozenset(argument.alias_info.before_set): bound.get(argument.name) for argument in schema.arguments
               if argument.alias_info}
    outputs = [aliases[frozenset(returned.alias_info.before_set)] if returned.alias_info else result
               for returned, result in zip(schema.returns, results if len(schema.returns) > 1 else [results])]
    return None if not schema.returns else outputs[0] if len(outputs) == 1 else tuple(outputs)


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.operations: list = []
        self.writes = 0  # operations that wrote data (which the recording left unwritten)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        masked = func in INDEXING and any(index is not None and index.dtype == torch.bool for index in args[1])
        if func in FORBIDDEN or masked:
            raise RuntimeError(f"{func} in a captured iteration: a read back to the host or a tensor from host data")
        self.check(func)
        # What changes a tensor's shape or storage (resize_, set_, t_) is host work, which a capture does.
        if func._schema.is_mutable and torch.Tag.inplace_view not in func.tags:
            self.writes += 1
            outputs = _without_writes(func, args, kwargs)
        else:
            outputs = func(*args, **kwargs)
        self.operations.append((func, args, kwargs, outputs))
        return outputs

    def check(self, func) -> None:
        """Where a stand-in for a capture that fails refuses an operation."""


class RecordedIteration(graphs.IterationGraph):
    """The CPU stand-in for a CUDA graph (see the module's docstring)."""

    device_type = "cpu"
    captures = 0
    recorder = _Recorder

    def capture(self, advance):
        RecordedIteration.captures += 1
        with self.recorder() as recorder:
            outputs = advance()
        self.operations = recorder.operations
        self.replay()
        return outputs

    def replay(self) -> None:
        with torch.no_grad():
            for func, args, kwargs, recorded in self.operations:
                result = func(*args, **kwargs)
                if func.is_view or func._schema.is_mutable:  # it wrote or aliased what it was given
                    continue
                for target, value in zip(tree_leaves(recorded), tree_leaves(result)):
                    if isinstance(target, torch.Tensor):
                        target.copy_(value)


class _Refusing(_Recorder):
    def check(self, func) -> None:
        if self.writes == 3:
            raise RuntimeError("operation not permitted when stream is capturing")


class RefusedLater(RecordedIteration):
    """The first capture succeeds; a later one fails mid-iteration, after three of the iteration's writes."""

    attempts = 0

    def capture(self, advance):
        RefusedLater.attempts += 1
        self.recorder = _Recorder if RefusedLater.attempts == 1 else _Refusing
        return super().capture(advance)


class EagerIteration(graphs.IterationGraph):
    """The same engine path (the static L-BFGS a graph needs) with every iteration run by Python."""

    device_type = "cpu"

    def run(self, advance):
        return advance()


@pytest.fixture(scope="module")
def engine(vgg_weights) -> Engine:
    return Engine(str(vgg_weights))


def two_jobs(**overrides) -> list[BatchRequest]:
    content = make_content()
    return [BatchRequest(content, [make_style(64, seed=1)], StylizeOptions(**SMALL, **overrides)),
            BatchRequest(content, [make_style(64, seed=5)], StylizeOptions(**SMALL, **overrides, strength=3.0,
                                                                            seed=9))]


def use_graphs(engine: Engine, monkeypatch, graph: type) -> None:
    """The engine's iterations run by ``graph`` on the CPU, through Engine.iteration_graphs."""
    monkeypatch.setattr(engine, "cuda_graphs", True)
    monkeypatch.setattr(engine, "capturing", graphs.Capturing(graph))


def recorded() -> RecordedIteration:
    return graphs.Capturing(RecordedIteration).new_graph()


def run(engine: Engine, monkeypatch, graph: type, requests, stop=None):
    """The batch with ``graph`` running its iterations; each job's progress losses as well as the results.
    ``stop(index, seen)`` sees the losses reported so far."""
    use_graphs(engine, monkeypatch, graph)
    seen: dict[int, list] = {0: [], 1: []}
    results = engine.stylize_batch(requests, on_progress=lambda i, p: seen[i].append(dict(p.losses)),
                                   should_stop=(lambda i: stop(i, seen)) if stop else None)
    return results, seen


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_iterations_replayed_from_a_graph_give_the_eager_result(engine, monkeypatch, optimizer):
    requests = two_jobs(optimizer=optimizer, learning_rate=0.05)
    before = RecordedIteration.captures
    replayed, replayed_losses = run(engine, monkeypatch, RecordedIteration, requests)
    assert RecordedIteration.captures == before + 2  # one per scale
    eager, eager_losses = run(engine, monkeypatch, EagerIteration, requests)
    assert replayed_losses == eager_losses and len(eager_losses[0]) == 24
    for together, alone in zip(replayed, eager):
        assert np.array_equal(np.asarray(together.image), np.asarray(alone.image))
    # It optimised, and the two jobs went their own ways.
    assert eager_losses[0][-1]["style"] < 0.5 * eager_losses[0][0]["style"]
    assert np.abs(np.asarray(replayed[0].image, float) - np.asarray(replayed[1].image, float)).mean() > 5


def test_a_job_leaving_mid_scale_gets_the_rest_a_new_capture(engine, monkeypatch):
    def stop(index, seen):
        return index == 1 and len(seen[1]) >= 6  # during the first scale's replays

    before = RecordedIteration.captures
    replayed, _ = run(engine, monkeypatch, RecordedIteration, two_jobs(), stop=stop)
    assert RecordedIteration.captures == before + 3
    eager, _ = run(engine, monkeypatch, EagerIteration, two_jobs(), stop=stop)
    assert replayed[1].cancelled and replayed[1].iterations == 6 and replayed[0].iterations == 24
    for together, alone in zip(replayed, eager):
        assert np.array_equal(np.asarray(together.image), np.asarray(alone.image))


def test_an_animation_with_its_temporal_loss_replays_as_it_runs_eagerly(engine, monkeypatch):
    """Later frames add a temporal term to their objective (nst_engine/temporal.py): captured with the rest."""
    frames, _ = ball_scene((48, 32), 3)
    animation = Animation(frames.frames, (100, 100, 100), 0)
    results, before = [], RecordedIteration.captures
    for graph in (RecordedIteration, EagerIteration):
        use_graphs(engine, monkeypatch, graph)
        results.append(engine.stylize_animation(animation, [make_style()], StylizeOptions(**SMALL)))
    replayed, eager = results
    assert RecordedIteration.captures > before + 2 and "temporal" in eager.losses[-1]
    assert replayed.losses == eager.losses
    for together, alone in zip(replayed.animation.frames, eager.animation.frames):
        assert np.array_equal(np.asarray(together), np.asarray(alone))


def test_a_failed_capture_leaves_its_iteration_to_run_eagerly_and_the_engine_captures_no_more(engine, monkeypatch,
                                                                                                caplog):
    """The second scale's capture fails: that scale runs eagerly and gives what it gives without the failure (the
    writes the failed capture recorded never happened); a later batch is not captured at all."""
    monkeypatch.setattr(RefusedLater, "attempts", 0)
    with caplog.at_level(logging.WARNING, logger=graphs.__name__):
        refused, refused_losses = run(engine, monkeypatch, RefusedLater, two_jobs())
        later = engine.stylize_batch(two_jobs())
    eager, eager_losses = run(engine, monkeypatch, EagerIteration, two_jobs())
    assert RefusedLater.attempts == 2 and refused_losses == eager_losses
    for together, alone in zip(refused, eager):
        assert together.error is None and np.array_equal(np.asarray(together.image), np.asarray(alone.image))
    [warning] = caplog.records
    assert "eagerly" in warning.getMessage() and "stream is capturing" in warning.getMessage()
    monkeypatch.setattr(engine, "cuda_graphs", False)
    for after, plain in zip(later, engine.stylize_batch(two_jobs())):  # the engine's path without graphs
        assert np.array_equal(np.asarray(after.image), np.asarray(plain.image))


def test_the_stand_in_replays_updates_in_place_and_freezes_replaced_state():
    """The property the engine tests above rely on: a replay advances state updated in place, and leaves state
    that the iteration replaced where the capture left it, as a CUDA graph would."""
    kept, replaced = torch.zeros(3), {"state": torch.zeros(3)}
    in_place, other = recorded(), recorded()
    in_place.capture(lambda: kept.add_(1))
    other.capture(lambda: replaced.__setitem__("state", replaced["state"] + 1) or replaced["state"])
    for _ in range(2):
        in_place.replay()
        other.replay()
    assert kept.tolist() == [3, 3, 3] and replaced["state"].tolist() == [1, 1, 1]


CANNOT_CAPTURE = {"item": lambda x: x * float(x.sum()), "boolean mask": lambda x: x[x > 0.5],
                  "boolean mask assigned": lambda x: x.index_put_((x > 0.5,), x.new_zeros(())),
                  "host data": lambda x: torch.tensor([1.0]) + x}


@pytest.mark.parametrize("iteration", CANNOT_CAPTURE.values(), ids=CANNOT_CAPTURE.keys())
def test_what_a_graph_cannot_capture_fails_the_capture(iteration):
    with pytest.raises(RuntimeError, match="read back to the host"):
        recorded().capture(lambda: iteration(torch.rand(4)))
