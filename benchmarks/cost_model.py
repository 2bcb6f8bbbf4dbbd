"""The job cost model (nst_engine/cost.py) against measured peaks: one fresh engine process per job, on the CPU.

    python benchmarks/cost_model.py            # every case (about 10 minutes on 2 idle CPU cores)
    python benchmarks/cost_model.py --quick    # three small cases: checks the script

Each case runs one job (or one batch) in its own process with a seeded random VGG19 (same shapes and cost as the
real one) and reports that process's peak RSS (VmHWM), its CPU seconds and the job's work as the model counts it.
The cases cover what a member can ask for: the quality levels' sizes, aspect ratios, one to three styles, style
scales 1–4, colour preservation, a batch of two, bf16. Cases marked "uncapped" run with the style bound
switched off (the engine before it), for the before/after figures in docs/security.md. Prints predicted vs
measured with the error, refits the three CPU constants by least squares (each case on the phase the model says
dominates it) and writes ``benchmarks/out/cost-model-cpu.json``; ``--rescore`` reprints that table for the
model's constants of now from the peaks kept there (after a refit), without running anything. Iteration counts
are kept small where the level's own would take minutes: the peak comes at the finest scale within its first
iterations, and the L-BFGS history the model adds for the rest is exact arithmetic (the full fast job checks it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nst_engine import cost  # noqa: E402
from nst_engine.options import StylizeOptions  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "cost-model-cpu.json"
STYLE_SIDE = 512  # square style images: the most pixels for a long side
TARGET_ERROR = 0.20


@dataclass(frozen=True)
class Case:
    name: str
    size: int
    iterations: int
    aspect: float = 4 / 3  # content width / height
    styles: int = 1
    style_scale: float = 1.0
    precision: str = "fp32"
    batch: int = 1
    preserve_colors: str = "none"
    uncapped: bool = False

    def options(self) -> StylizeOptions:
        return StylizeOptions(size=self.size, iterations=self.iterations, style_scale=self.style_scale,
                              precision=self.precision, preserve_colors=self.preserve_colors, device="cpu")

    def content_size(self) -> tuple[int, int]:
        width, height = (1200, round(1200 / self.aspect)) if self.aspect >= 1 else (round(1200 * self.aspect), 1200)
        return width, height


CASES = (
    Case("fast level (full job)", 256, 45),
    Case("standard level, 16 iterations", 512, 16),
    Case("high level, 8 iterations", 768, 8),
    Case("1024 px, 4 iterations", 1024, 4),
    Case("384 px square", 384, 3, aspect=1.0),
    Case("512 px 2:1", 512, 3, aspect=2.0),
    Case("512 px 1:3", 512, 3, aspect=1 / 3),
    Case("512 px, 3 styles", 512, 3, styles=3),
    Case("512 px, style scale 2", 512, 3, style_scale=2.0),
    Case("512 px, 3 styles, style scale 4", 512, 3, styles=3, style_scale=4.0),
    Case("768 px, style scale 4", 768, 3, style_scale=4.0),
    Case("512 px, histogram colours", 512, 3, preserve_colors="histogram"),
    Case("512 px, batch of 2", 512, 3, batch=2),
    Case("256 px, bf16", 256, 2, precision="bf16"),
    Case("256 px, fp32 (beside bf16)", 256, 2),
    Case("512 px, 1 iteration", 512, 1),
    Case("512 px, style scale 4, 1 iteration", 512, 1, style_scale=4.0),
    Case("512 px, style scale 4, 1 iteration, uncapped", 512, 1, style_scale=4.0, uncapped=True),
)
QUICK = (Case("128 px", 128, 4), Case("192 px, 2 styles, style scale 4", 192, 4, styles=2, style_scale=4.0),
         Case("192 px, batch of 2", 192, 4, batch=2))


def run_case(spec: dict) -> dict:
    """Child-process side: load the engine, run the case's job(s), report peak RSS and CPU seconds."""
    from PIL import Image

    from nst_engine.transfer import BatchRequest, Engine

    case = Case(**spec["case"])
    cost.STYLE_PIXEL_RATIO = math.inf if case.uncapped else cost.STYLE_PIXEL_RATIO
    engine = Engine(spec["weights"])
    content, style = Image.open(spec["content"]), Image.open(spec["style"])
    requests = [BatchRequest(content, [style] * case.styles, case.options()) for _ in range(case.batch)]
    started = time.perf_counter()
    engine.stylize_batch(requests)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_mb": peak_rss_mb(), "cpu_s": usage.ru_utime + usage.ru_stime,
            "job_s": time.perf_counter() - started}


def peak_rss_mb() -> float:
    """This process's high-water resident set (VmHWM: ``ru_maxrss`` would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


@contextlib.contextmanager
def style_bound(case: Case) -> Iterator[None]:
    """The model (and, in a child, the engine) with the style bound off for an "uncapped" case."""
    kept = cost.STYLE_PIXEL_RATIO
    cost.STYLE_PIXEL_RATIO = math.inf if case.uncapped else kept
    try:
        yield
    finally:
        cost.STYLE_PIXEL_RATIO = kept


def predicted(case: Case) -> tuple[cost.JobCost, float, tuple[float, float, float]]:
    """The model's cost of one of the case's jobs, the peak of its batch, and the terms of its peak for the
    fit: (framed picture pixels, framed style pixels, optimiser state in bytes; on the CPU every precision
    counts as fp32)."""
    sizes = [(STYLE_SIDE, STYLE_SIDE)] * case.styles
    with style_bound(case):
        one = cost.job_cost(case.options(), case.content_size(), sizes)
        terms = cost.scale_terms(case.options(), case.content_size(), sizes)
    phases = [(cost.OPTIMISE_BYTES_PER_PIXEL * t.picture + t.state_bytes, (t.picture, 0.0, t.state_bytes))
              for t in terms]
    phases += [(cost.TARGET_BYTES_PER_PIXEL * t.largest_style + t.held_bytes, (0.0, t.largest_style, t.held_bytes))
               for t in terms]
    return one, cost.batch_peak_mb([one] * case.batch), max(phases)[1]


def fit(rows: list[dict]) -> dict:
    """Least squares for FIXED_MB and the two per-pixel constants: peak - optimiser state = fixed + a·x + b·y,
    over the single fp32 jobs (a batch checks the model's sum, bf16 that it costs as fp32; they fit nothing)."""
    rows = [row for row in rows if row["case"]["batch"] == 1 and row["case"]["precision"] == "fp32"]
    design = np.array([[1.0, row["features"][0] / cost.MB, row["features"][1] / cost.MB] for row in rows])
    target = np.array([row["measured_mb"] - row["features"][2] / cost.MB for row in rows])
    (fixed, optimise, targets), *_ = np.linalg.lstsq(design, target, rcond=None)
    return {"FIXED_MB": round(float(fixed), 1), "OPTIMISE_BYTES_PER_PIXEL": round(float(optimise)),
            "TARGET_BYTES_PER_PIXEL": round(float(targets))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small cases, to check the script")
    parser.add_argument("--rescore", action="store_true",
                        help=f"no new runs: the model's predictions again for the peaks in {OUT.name}")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"measure again only the cases named (exactly), keeping the others' peaks in {OUT.name}")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_case(json.loads(args.job))))
        return 0
    if args.rescore or args.only:
        kept = json.loads(OUT.read_text())
        measured = {row["case"]["name"]: (Case(**row["case"]), {key: row[key] for key in ("measured_mb", "cpu_s",
                                                                                            "job_s")})
                    for row in kept["cases"]}
        chosen = tuple(case for case in CASES if case.name in (args.only or ()))
        measured.update((case.name, (case, result)) for case, result in measure(chosen))
        return report(list(measured.values()), kept["machine"], write=True)
    return report(list(measure(QUICK if args.quick else CASES)), cpu_model(), write=not args.quick)


def measure(cases: tuple[Case, ...]) -> Iterator[tuple[Case, dict]]:
    """Each case's peak RSS and CPU seconds, from a fresh process per case."""
    from nst_engine.testing import write_random_vgg19
    from tests.conftest import make_content, make_style

    with tempfile.TemporaryDirectory(prefix="nst-cost-") as folder:
        work = Path(folder)
        weights = write_random_vgg19(work / "vgg19.pth")
        make_style(STYLE_SIDE).save(work / "style.png")
        for case in cases:
            content = work / f"content-{case.aspect:.3f}.png"
            if not content.exists():
                make_content(*case.content_size()).save(content)
            spec = {"case": asdict(case), "weights": str(weights), "content": str(content),
                    "style": str(work / "style.png")}
            child = subprocess.run([sys.executable, __file__, "--job", json.dumps(spec)], capture_output=True,
                                   text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if child.returncode:
                raise SystemExit(f"{case.name}: failed\n{child.stderr[-2000:]}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"  measured {case.name}: {result['peak_mb']:.0f} MB", flush=True)
            yield case, {"measured_mb": round(result["peak_mb"]), "cpu_s": round(result["cpu_s"], 1),
                         "job_s": round(result["job_s"], 1)}


def report(measured: list[tuple[Case, dict]], machine: str, *, write: bool) -> int:
    """Predicted vs measured per case, the largest error, a refit; the JSON when ``write``."""
    rows = []
    print(f"{'case':58} {'predicted':>9} {'measured':>9} {'error':>7} {'CPU s':>7} {'work/CPU s':>11}")
    for case, result in measured:
        one, peak, features = predicted(case)
        error = peak / result["measured_mb"] - 1
        work = one.work * case.batch
        rows.append({"case": asdict(case), "predicted_mb": round(peak), **result, "error": round(error, 3),
                     "work": work, "features": features})
        print(f"{case.name:58} {peak:8.0f}M {result['measured_mb']:8.0f}M {error:+7.1%} {result['cpu_s']:7.1f} "
              f"{work / 1e6 / result['cpu_s']:10.2f}M")
    worst = max(abs(row["error"]) for row in rows)
    refit = fit(rows) if len(rows) >= 3 else {}
    print(f"largest error {worst:.1%} (target ±{TARGET_ERROR:.0%}); least-squares refit of the CPU constants: {refit}")
    print(f"machine: {machine}; shared with other work while measured, so CPU seconds vary (the peaks do not)")
    if write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({"machine": machine, "constants": {
            name: getattr(cost, name) for name in ("FIXED_MB", "OPTIMISE_BYTES_PER_PIXEL", "TARGET_BYTES_PER_PIXEL",
                                                    "HALF_PRECISION_SHARE", "STYLE_PIXEL_RATIO")},
            "refit": refit, "largest_error": worst, "cases": rows}, indent=1))
        print(f"wrote {OUT.relative_to(REPO)}")
    return 0 if worst <= TARGET_ERROR else 1


def cpu_model() -> str:
    """The CPU's model name and count, to tell the machines apart (docs compare only within one)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{os.cpu_count()} × {line.split(':', 1)[1].strip()}"
    return f"{os.cpu_count()} × unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
