"""The L-BFGS step alone: one torch.optim.LBFGS per job (the engine before nst_engine/lbfgs.py) against the batched
L-BFGS, at the engine's sizes and history lengths.

    python benchmarks/optimizer.py                    # CPU; --device cuda on a GPU
    python benchmarks/optimizer.py --quick            # tiny sizes, one round: checks the script
    python benchmarks/optimizer.py --baseline-tree ../nst-bot-main   # also that tree's nst_engine/lbfgs.py

Per case (jobs in the batch × picture × remembered pairs): seconds per step of the whole batch (median of the
timed steps, the two variants interleaved over ``--rounds``), and from one profiled step the operations called
from Python (``aten::`` calls outside another, views left out: on a GPU each is one or more launches) and the
host synchronisations (``item()`` calls: on a GPU each waits for the device). The objective is a separable
quadratic per job (its curvature positive and badly conditioned, so every pair is remembered), cheap beside the
step, so the figure is the optimiser's. The per-job baseline is the engine's earlier step: torch's L-BFGS, the
trust region, the clamp; ``--baseline-tree`` adds another tree's batched L-BFGS, interleaved with the others.
JSON: ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nst_engine  # noqa: E402,F401  (before torch: its OpenMP default)
import torch  # noqa: E402

from nst_engine.lbfgs import BatchedLBFGS  # noqa: E402
from nst_engine.transfer import LBFGS_MAX_STEP_RMS  # noqa: E402

SYNCS = {"aten::_local_scalar_dense", "aten::item"}
VIEWS = {f"aten::{name}" for name in ("select", "unsqueeze", "slice", "view", "as_strided", "expand", "reshape",
                                      "alias", "t", "transpose", "permute", "squeeze", "detach", "empty")}


class Quadratic:
    """0.5 · Σ c (x − target)² per job, c spread over four decades so that L-BFGS is far from done after 50
    steps and remembers every pair: its gradient for a batch of flattened images."""

    def __init__(self, jobs: int, size: int, device: torch.device) -> None:
        generator = torch.Generator().manual_seed(0)
        self.curvature = torch.rand(jobs, size, generator=generator).mul(-4 * math.log(10)).exp().to(device)
        self.target = torch.rand(jobs, size, generator=generator).to(device)

    def gradient(self, images: torch.Tensor) -> torch.Tensor:
        return self.curvature * (images - self.target)


@torch.no_grad()
def torch_lbfgs_step(image: torch.Tensor, optimizer: torch.optim.LBFGS) -> None:
    """The engine's step before nst_engine/lbfgs.py, with the gradient already in ``image.grad``: torch's L-BFGS
    step (one evaluation, so the closure's loss is never used), shortened to the trust region, clamped."""
    before = image.detach().clone()
    optimizer.step(lambda: torch.zeros(()))
    rms = float((image - before).pow(2).mean().sqrt())
    if rms > LBFGS_MAX_STEP_RMS:
        factor = LBFGS_MAX_STEP_RMS / rms
        image.copy_(before.lerp_(image, factor))
        optimizer.state[image]["t"] *= factor
    image.clamp_(0, 1)


class PerJob:
    """A torch.optim.LBFGS per job, stepped one job after another."""

    def __init__(self, start: torch.Tensor, capacity: int) -> None:
        self.images = [row.clone().requires_grad_(True) for row in start]
        self.optimizers = [torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=capacity)
                           for image in self.images]

    def step(self, objective: Quadratic) -> None:
        gradients = objective.gradient(torch.stack([image.detach() for image in self.images]))
        for image, optimizer, gradient in zip(self.images, self.optimizers, gradients):
            image.grad = gradient.clone()
            torch_lbfgs_step(image, optimizer)


class Batched:
    """nst_engine/lbfgs.py, as the engine steps it."""

    implementation = BatchedLBFGS

    def __init__(self, start: torch.Tensor, capacity: int) -> None:
        self.images = start.clone()
        self.optimizer = self.implementation(*start.shape, capacity, device=start.device,
                                             max_step_rms=LBFGS_MAX_STEP_RMS)
        self.frozen = torch.zeros(len(start), dtype=torch.bool, device=start.device)

    def step(self, objective: Quadratic) -> None:
        self.images = self.optimizer.step(self.images, objective.gradient(self.images), self.frozen)


def baseline_variant(tree: Path) -> type:
    """:class:`Batched` with ``tree``'s nst_engine/lbfgs.py (it imports only torch and math)."""
    spec = importlib.util.spec_from_file_location("baseline_lbfgs", tree / "nst_engine" / "lbfgs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return type("BaselineBatched", (Batched,), {"implementation": module.BatchedLBFGS})


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(variant: type, jobs: int, pixels: int, pairs: int, steps: int, device: torch.device) -> dict:
    """Seconds per step with ``pairs`` remembered, then one profiled step's operations and host syncs."""
    size = 3 * pixels
    objective = Quadratic(jobs, size, device)
    start = torch.rand(jobs, size, generator=torch.Generator().manual_seed(1)).to(device)
    optimizer = variant(start, pairs + steps + 2)
    for _ in range(pairs + 1):  # the memory filled
        optimizer.step(objective)
    times = []
    for _ in range(steps):
        synchronize(device)
        began = time.perf_counter()
        optimizer.step(objective)
        synchronize(device)
        times.append(time.perf_counter() - began)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        optimizer.step(objective)
    events = [event for event in profile.events() if event.name.startswith("aten::")]
    calls = sum(1 for event in events if event.name not in VIEWS
                and not (event.cpu_parent and event.cpu_parent.name.startswith("aten::")))
    return {"seconds": statistics.median(times), "ops": calls,
            "syncs": sum(1 for event in events if event.name in SYNCS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks the script")
    parser.add_argument("--baseline-tree", type=Path, help="another checkout whose batched L-BFGS to time too")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "optimizer.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    variants = {"per job (torch.optim.LBFGS)": PerJob}
    if args.baseline_tree:
        variants["batched, baseline tree"] = baseline_variant(args.baseline_tree)
    variants["batched (nst_engine/lbfgs.py)"] = Batched
    # The standard job's scales (128, 256, 512 px, 4:3) and about the pairs each remembers by its end.
    cases = ([(1, 64 * 48, 4), (4, 64 * 48, 4)] if args.quick else
             [(jobs, pixels, pairs) for jobs in (1, 8) for pixels, pairs in
              ((128 * 96, 42), (256 * 192, 20), (512 * 384, 15))])
    rounds, steps = (1, 2) if args.quick else (args.rounds, 5)
    report = {"device": str(device), "threads": torch.get_num_threads(), "cases": []}
    for jobs, pixels, pairs in cases:
        samples: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, variant in variants.items():
                samples[name].append(measure(variant, jobs, pixels, pairs, steps, device))
        rows = {name: {"seconds": statistics.median(s["seconds"] for s in runs), "ops": runs[-1]["ops"],
                       "syncs": runs[-1]["syncs"]} for name, runs in samples.items()}
        before, now = rows[next(iter(rows))], rows["batched (nst_engine/lbfgs.py)"]
        ratios = {f"{name} / per job": row["seconds"] / before["seconds"] for name, row in list(rows.items())[1:]}
        if args.baseline_tree:
            ratios["batched / baseline tree's"] = now["seconds"] / rows["batched, baseline tree"]["seconds"]
        report["cases"].append({"jobs": jobs, "pixels": pixels, "pairs": pairs, "variants": rows, "ratios": ratios})
        for name, row in rows.items():
            print(f"{jobs} job(s), {pixels} px, {pairs} pairs, {name:30s} {row['seconds'] * 1e3:8.2f} ms/step "
                  f"{row['ops']:6d} ops {row['syncs']:5d} host syncs", flush=True)
        print("    " + ", ".join(f"{name}: {ratio:.3f}" for name, ratio in ratios.items()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
