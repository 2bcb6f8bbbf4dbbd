"""nst_engine on a CUDA GPU: what a job costs there, which engine choices pay, and what quality costs.

    python benchmarks/gpu.py --out DIR                  # every section, a few minutes on one H100/H200
    python benchmarks/gpu.py --quick --device cpu       # tiny sizes anywhere: checks the script

The CPU figures come from benchmarks/engine.py; this is the GPU side, on the same seeded random VGG19 and the
same content/style pair. Each section adds its part to ``DIR/gpu.json`` as soon as it ends; a section that
fails is recorded with its error and the others still run; ``--budget`` seconds stop new sections from
starting, so a run on a lent machine always returns what it measured. Sections:

- cli: ``nst-bot stylize --quality standard`` in a fresh process (start, CUDA, weights, tuning: the first job);
- levels: each quality level's default job and 1024/2048 px jobs in one warm engine: first run (shapes new to
  cuDNN's autotuner) and second run, and the peak GPU memory of each;
- tuning: each level's first and second job with cuDNN's autotuner off (the default) and on, on new shapes;
- layout: seconds per iteration at one scale for precision (fp32/bf16/fp16) × memory format, with cuDNN
  autotuning on, and without the border frame (zero padding only), beside the FLOP floor of the device;
- batching: the same jobs one by one and in batches of 2, 4 and 8 (``Engine.stylize_batch``): jobs per minute;
- graphs: standard jobs one by one and in batches of 8 and 16, eager and replayed from CUDA graphs
  (``Engine(cuda_graphs=True)``, nst_engine/graphs.py), interleaved: jobs per minute, each batch's seconds, how
  far the graphs' pictures and losses lie from the eager ones, and one job's iteration at the job's size;
- dispatches: the operations one iteration dispatches (views left out), alone and in a batch, by operation: on a
  GPU each is at least one launch, what a launch-bound iteration pays for (counted the same way on a CPU);
- precision: one standard job in fp32, bf16 and fp16, scored by the reference objective (benchmarks/reference.py);
- stability: the same standard job three times, and with three seeds, in fp32 and bf16 (how far repeats and
  seeds lie apart, the loss and score each reaches), and three times with cuDNN's deterministic algorithms;
- border: the border jump (benchmarks/quality.py) without and with the border frame at 512 and 1024 px (one
  seed; ``benchmarks/quality.py --only border --device cuda`` averages seeds and compares more candidates);
- detail: a real 1024 px job with the old 8:4:2:1 split and the finest scale's share, against a long run;
- quality: time to the classic reference's score (benchmarks/engine.py), without and with the border frame;
- compile: torch.compile of the network at 512 px (one-off cost against each pass's saving).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import engine as engine_bench  # noqa: E402
from benchmarks.quality import (border_jump, border_setting, contact_sheet, engine_border,  # noqa: E402
                                high_frequency_energy, inner_jump, setting)
from benchmarks.reference import GatysObjective, image_tensor, load_classic_vgg  # noqa: E402
from nst_engine import options as options_module  # noqa: E402
from nst_engine.images import scaled_size  # noqa: E402
from nst_engine.options import QUALITY_LEVELS, StylizeOptions  # noqa: E402
from nst_engine.transfer import BatchRequest, Engine, resolve_device  # noqa: E402

FRAMED = engine_border() or "frame 8"  # the engine's border handling, compared with zero padding alone
SECTIONS = ("cli", "levels", "tuning", "layout", "batching", "graphs", "dispatches", "precision", "stability", "border",
            "detail", "quality", "compile")
BF16_DENSE_TFLOPS = {"H100": 989.0, "H200": 989.0}  # NVIDIA's dense bf16 tensor-core peak (SXM), for the floor


@dataclass(frozen=True)
class Plan:
    levels: tuple[tuple[str, int, int], ...]  # (name, size, iterations)
    layout_sizes: tuple[int, ...]
    layout_iterations: int
    batch_sizes: tuple[tuple[int, int], ...]  # (size, iterations) of the batched jobs
    batch_jobs: int
    job: tuple[int, int]  # the standard job: size, iterations
    cli: tuple[str, ...]  # what the CLI job asks for
    border_sizes: tuple[int, ...]
    detail: tuple[int, int, int]  # size, iterations, long run's iterations (all at full size)
    quality: engine_bench.Plan


FULL = Plan(levels=(*((name, level.size, level.iterations) for name, level in QUALITY_LEVELS.items()),
                    ("1024px", 1024, 80), ("2048px", 2048, 80)),
            layout_sizes=(512, 1024), layout_iterations=20, batch_sizes=((256, 45), (512, 80)), batch_jobs=8,
            job=(512, 80), cli=("--quality", "standard"), border_sizes=(512, 1024), detail=(1024, 80, 300), quality=engine_bench.FULL)
QUICK = Plan(levels=(("fast", 64, 6), ("standard", 96, 6)), layout_sizes=(64,), layout_iterations=3,
             batch_sizes=((64, 4),), batch_jobs=2, job=(64, 6), cli=("--size", "64", "--iterations", "4"), border_sizes=(128,), detail=(96, 8, 8),
             quality=engine_bench.QUICK)


class Run:
    """Inputs shared by the sections, and the report they fill."""

    def __init__(self, plan: Plan, device: str, precision: str, out: Path) -> None:
        from nst_engine.testing import write_random_vgg19

        self.plan, self.device_name, self.precision, self.out = plan, device, precision, out
        self.device = resolve_device(device)
        self.weights = str(write_random_vgg19(out / "vgg19-random.pth", seed=0))
        self.content = engine_bench.content_scene(2048, 1536)  # drawn at the largest size measured
        self.style = Image.open(engine_bench.STYLE_FILE).convert("RGB")
        self.report: dict = {"torch": torch.__version__, "device": describe(self.device)}
        self.engine = Engine(self.weights)

    def options(self, size: int, iterations: int, **changes: object) -> StylizeOptions:
        return StylizeOptions(**{"size": size, "iterations": iterations, "device": self.device_name,
                                 "precision": self.precision, **changes})

    def job(self, size: int, iterations: int, engine: Engine | None = None, content: Image.Image | None = None,
            **changes: object):
        """One job; returns the result and the peak GPU memory it took (MB; 0 on a CPU)."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = (engine or self.engine).stylize(content or self.content, [self.style],
                                                 self.options(size, iterations, **changes))
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.device.type == "cuda" else 0.0
        return result, peak


def describe(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"type": "cpu", "threads": torch.get_num_threads()}
    properties = torch.cuda.get_device_properties(device)
    return {"type": "cuda", "name": properties.name, "memory_gb": properties.total_memory / 1e9,
            "multiprocessors": properties.multi_processor_count, "capability": list(torch.cuda.get_device_capability()),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "bf16": torch.cuda.is_bf16_supported(), "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


def cli_section(run: Run) -> dict:
    """The product's own command in a new process: what the first job after a start costs."""
    content_file = run.out / "content.png"
    run.content.resize((1024, 768)).save(content_file)
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-m", "bot", "stylize", str(content_file), "--preset", "mosaic",
                            *run.plan.cli, "--weights", run.weights, "--device", run.device_name,
                            "-o", str(run.out / "cli-standard.png")],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    wall = time.perf_counter() - started
    print(child.stderr[-600:], flush=True)
    return {"returncode": child.returncode, "process_wall_s": wall, "stderr_tail": child.stderr[-300:]}


def levels_section(run: Run) -> dict:
    run.job(64, 2)  # network on the device, CUDA context
    rows = {}
    for name, size, iterations in run.plan.levels:
        first, peak = run.job(size, iterations)
        second, _ = run.job(size, iterations)
        rows[name] = {"size": list(first.image.size), "iterations": first.iterations, "first_s": first.elapsed,
                      "second_s": second.elapsed, "peak_mb": peak, "device": first.device}
        print(f"  {name:9s} {first.image.size}: first {first.elapsed:6.2f} s, second {second.elapsed:6.2f} s, "
              f"peak {peak:7.0f} MB", flush=True)
    return rows


def tuning_section(run: Run) -> dict:
    """First and second job of each level with cuDNN's autotuner off (the engine's default) and on, each on an
    aspect ratio neither has seen, so every first job meets new shapes as an upload does."""
    rows: dict = {}
    for label, tune, aspect in (("autotune off (default)", False, 1.5), ("autotune on", True, 1.25)):
        content = run.content.resize((round(1536 * aspect), 1536))
        torch.backends.cudnn.benchmark = tune
        try:
            for name, size, iterations in run.plan.levels[:3]:
                first, peak = run.job(size, iterations, content=content)
                second, _ = run.job(size, iterations, content=content)
                rows.setdefault(label, {})[name] = {"size": list(first.image.size), "first_s": first.elapsed,
                                                    "second_s": second.elapsed, "peak_mb": peak}
                print(f"  {label}: {name} {first.image.size} first {first.elapsed:.2f} s, second "
                      f"{second.elapsed:.2f} s, peak {peak:.0f} MB", flush=True)
        finally:
            torch.backends.cudnn.benchmark = False
    return rows


def seconds_per_iteration(run: Run, size: int, engine: Engine, **changes: object) -> float:
    iterations = run.plan.layout_iterations
    return engine_bench.engine_seconds_per_iteration(engine, run.content, run.style, size, iterations,
                                                     device=run.device_name, **changes)


def layout_section(run: Run) -> dict:
    nchw = Engine(run.weights, channels_last=False)
    rows: dict = {}
    for size in run.plan.layout_sizes:
        variants: dict[str, Callable[[], float]] = {
            "fp32 NCHW": lambda: seconds_per_iteration(run, size, nchw, precision="fp32"),
            "fp32 channels_last": lambda: seconds_per_iteration(run, size, run.engine, precision="fp32"),
            "bf16 NCHW": lambda: seconds_per_iteration(run, size, nchw, precision="bf16"),
            "bf16 channels_last (default)": lambda: seconds_per_iteration(run, size, run.engine, precision="bf16"),
            "fp16 channels_last": lambda: seconds_per_iteration(run, size, run.engine, precision="fp16"),
            "bf16 channels_last, cuDNN autotune on": lambda: tuned(run, size),
            "bf16 channels_last, no border frame": lambda: unframed(run, size),
        }
        width, height = scaled_size(*run.content.size, size)
        flops = 2 * engine_bench.vgg_flops(width, height)
        seconds = {label: measure() for label, measure in variants.items()}
        peak = next((tflops for key, tflops in BF16_DENSE_TFLOPS.items()
                     if key in run.report["device"].get("name", "")), None)
        rows[str(size)] = {"size": [width, height], "gflop_per_iteration": flops / 1e9, "seconds": seconds,
                           "bf16_floor_s": flops / (peak * 1e12) if peak else None}
        base = seconds["bf16 channels_last (default)"]
        print(f"  {width}×{height}: " + "; ".join(f"{label} {value * 1000:.1f} ms ({value / base:.2f}×)"
                                                  for label, value in seconds.items()), flush=True)
    return rows


def tuned(run: Run, size: int) -> float:
    torch.backends.cudnn.benchmark = True
    try:
        return seconds_per_iteration(run, size, Engine(run.weights), precision="bf16")
    finally:
        torch.backends.cudnn.benchmark = False


def unframed(run: Run, size: int) -> float:
    with border_setting("zeros"):
        return seconds_per_iteration(run, size, Engine(run.weights), precision="bf16")


def varied_jobs(run: Run, size: int, iterations: int, count: int) -> list[BatchRequest]:
    """Jobs a dispatcher would batch: one output size, their own strengths and seeds."""
    return [BatchRequest(run.content, [run.style], run.options(size, iterations, strength=2.0 ** (i % 3 - 1), seed=i))
            for i in range(count)]


def batching_section(run: Run) -> dict:
    rows = {}
    for size, iterations in run.plan.batch_sizes:
        jobs = varied_jobs(run, size, iterations, run.plan.batch_jobs)
        run.engine.stylize_batch(jobs[:1])  # shapes tuned before timing
        times, peaks = {}, {}
        for batch in (1, 2, 4, 8):
            if batch > len(jobs):
                break
            if run.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            for first in range(0, len(jobs), batch):
                run.engine.stylize_batch(jobs[first:first + batch])
            times[batch] = time.perf_counter() - started
            peaks[batch] = torch.cuda.max_memory_allocated() / 2**20 if run.device.type == "cuda" else 0.0
        per_minute = {batch: 60 * len(jobs) / seconds for batch, seconds in times.items()}
        rows[str(size)] = {"jobs": len(jobs), "iterations": iterations, "seconds": times,
                           "jobs_per_minute": per_minute, "peak_mb": peaks,
                           "ratio_to_one_by_one": {batch: rate / per_minute[1] for batch, rate in per_minute.items()}}
        print(f"  {size} px × {iterations} its, {len(jobs)} jobs: " + ", ".join(
            f"batch {batch}: {rate:.1f} jobs/min ({rate / per_minute[1]:.2f}×, {peaks[batch]:.0f} MB)"
            for batch, rate in per_minute.items()), flush=True)
    return rows


def graphs_section(run: Run) -> dict:
    """Eager and graph-replayed engines take turns on the same jobs (twice each), so drift hits both alike."""
    size, iterations = run.plan.job
    batches = (1, run.plan.batch_jobs, 2 * run.plan.batch_jobs)
    jobs = varied_jobs(run, size, iterations, batches[-1])
    engines = {"eager": run.engine, "graphs": Engine(run.weights, cuda_graphs=True)}
    for engine in engines.values():
        engine.stylize_batch(jobs[:1])  # shapes tuned before timing
    seconds: dict = {name: {batch: [] for batch in batches} for name in engines}
    results: dict = {}
    for _round in range(2):
        for batch in batches:
            for name, engine in engines.items():
                started = time.perf_counter()
                results[name] = [result for first in range(0, len(jobs), batch)
                                 for result in engine.stylize_batch(jobs[first:first + batch])]
                if run.device.type == "cuda":
                    torch.cuda.synchronize()
                seconds[name][batch].append(time.perf_counter() - started)
    best = {name: {batch: min(times) for batch, times in by_batch.items()} for name, by_batch in seconds.items()}
    per_minute = {name: {batch: 60 * len(jobs) / value for batch, value in by_batch.items()}
                  for name, by_batch in best.items()}
    # A batch's jobs all finish when it does: its seconds are each job's latency.
    latency = {name: {batch: value * batch / len(jobs) for batch, value in by_batch.items()}
               for name, by_batch in best.items()}
    per_iteration = {name: seconds_per_iteration(run, size, engine) for name, engine in engines.items()}
    apart = [grey_levels_apart(a.image, b.image) for a, b in zip(results["eager"], results["graphs"])]
    loss_ratio = [b.losses["total"] / a.losses["total"] for a, b in zip(results["eager"], results["graphs"])]
    for batch in batches:
        print(f"  {size} px × {iterations} its, batch {batch}: eager {per_minute['eager'][batch]:.0f} jobs/min, "
              f"graphs {per_minute['graphs'][batch]:.0f} ({per_minute['graphs'][batch] / per_minute['eager'][batch]:.2f}×); "
              f"latency {latency['eager'][batch]:.2f} s → {latency['graphs'][batch]:.2f} s", flush=True)
    captured = run.device.type == "cuda" and not engines["graphs"].capturing.failed
    if not captured:  # graphs are CUDA's, and a failed capture falls back to eager iterations (nst_engine/graphs.py)
        print("  graphs: none captured (not on CUDA, or a capture failed: a warning says why); both ran eagerly",
              flush=True)
    print(f"  graphs against eager: {statistics.mean(apart):.2f} grey levels apart on average, total loss "
          f"{min(loss_ratio):.3f}–{max(loss_ratio):.3f}×; one job's iteration at {size} px: eager "
          f"{per_iteration['eager'] * 1000:.2f} ms, graphs {per_iteration['graphs'] * 1000:.2f} ms", flush=True)
    return {"size": size, "iterations": iterations, "jobs": len(jobs), "captured": captured, "seconds": seconds,
            "seconds_per_iteration": per_iteration,
            "jobs_per_minute": per_minute, "latency_s": latency, "grey_levels_apart": apart, "loss_ratio": loss_ratio}


class Dispatches(TorchDispatchMode):
    """Counts the operations dispatched below autograd, by name; views are left out (they launch nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.seen[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def dispatches_section(run: Run) -> dict:
    """One scale at the standard job's size (so that every iteration is alike), 5 iterations alone and in a batch
    of ``batch_jobs``: the operations between the first job's progress reports, median over the iterations, and
    the last iteration's by operation."""
    size = run.plan.job[0]
    rows = {}
    for batch in (1, run.plan.batch_jobs):
        jobs = [BatchRequest(run.content, [run.style], run.options(size, 5, min_scale=size, seed=i))
                for i in range(batch)]
        counting, snapshots = Dispatches(), []

        def reported(index: int, _progress) -> None:
            if index == 0:
                snapshots.append(counting.seen.copy())

        with counting:
            run.engine.stylize_batch(jobs, on_progress=reported)
        per_iteration = [later - earlier for earlier, later in zip(snapshots, snapshots[1:])]
        median = statistics.median(sum(counts.values()) for counts in per_iteration)
        rows[str(batch)] = {"operations_per_iteration": median, "by_operation": dict(per_iteration[-1].most_common())}
        print(f"  batch {batch} at {size} px: {median:.0f} operations per iteration; most: " + ", ".join(
            f"{name} {count}" for name, count in per_iteration[-1].most_common(6)), flush=True)
    return rows


def objective_at(run: Run, size: int) -> GatysObjective:
    """The reference objective (benchmarks/reference.py) at the output size: an independent fp32 evaluator."""
    width, height = scaled_size(*run.content.size, size)
    defaults = StylizeOptions()
    return GatysObjective(load_classic_vgg(run.weights).to(run.device),
                          image_tensor(run.content.resize((width, height), Image.Resampling.LANCZOS)).to(run.device),
                          image_tensor(run.style.resize((size, size), Image.Resampling.LANCZOS)).to(run.device),
                          defaults.content_weight, defaults.style_weight)


def grey_levels_apart(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def precision_section(run: Run) -> dict:
    size, iterations = run.plan.job
    objective = objective_at(run, size)
    for precision in ("fp32", "bf16", "fp16"):  # each precision's shapes tuned before the timed jobs
        run.job(size, iterations, precision=precision)
    results = {precision: run.job(size, iterations, precision=precision)[0] for precision in ("fp32", "bf16", "fp16")}
    rows = {precision: {"seconds": result.elapsed, "score": objective.score(result.image),
                        "grey_levels_from_fp32": grey_levels_apart(result.image, results["fp32"].image)}
            for precision, result in results.items()}
    rows["content_image_score"] = objective.score(run.content)
    for precision in ("fp32", "bf16", "fp16"):
        row = rows[precision]
        print(f"  {precision}: {row['seconds']:.2f} s, score {row['score']:.4f}, "
              f"{row['grey_levels_from_fp32']:.2f} grey levels from fp32", flush=True)
    return rows


def stability_section(run: Run) -> dict:
    size, iterations = run.plan.job
    objective = objective_at(run, size)
    rows: dict = {}
    pictures = []
    for precision in ("fp32", "bf16"):
        repeats = [run.job(size, iterations, precision=precision)[0] for _ in range(3)]
        seeds = [run.job(size, iterations, precision=precision, seed=seed)[0] for seed in (1, 2, 3)]
        scores = [objective.score(result.image) for result in repeats + seeds]
        rows[precision] = {"repeats_apart": [grey_levels_apart(repeats[0].image, r.image) for r in repeats[1:]],
                           "seeds_apart": [grey_levels_apart(repeats[0].image, r.image) for r in seeds],
                           "total_loss": [r.losses["total"] for r in repeats + seeds], "score": scores}
        pictures += [(f"{precision} {name}: {score:.3f}", result.image) for name, result, score in
                     zip(("run 1", "run 2", "run 3", "seed 1", "seed 2", "seed 3"), repeats + seeds, scores)]
        print(f"  {precision}: repeats {rows[precision]['repeats_apart']} and seeds {rows[precision]['seeds_apart']} "
              f"grey levels from run 1; scores {[round(x, 3) for x in scores]}; engine losses "
              f"{[round(x, 3) for x in rows[precision]['total_loss']]}", flush=True)
    torch.backends.cudnn.deterministic = True
    try:
        fixed = [run.job(size, iterations, engine=Engine(run.weights))[0] for _ in range(3)]
    finally:
        torch.backends.cudnn.deterministic = False
    rows["deterministic cuDNN"] = {"repeats_apart": grey_levels_apart(fixed[1].image, fixed[2].image),
                                   "seconds": [r.elapsed for r in fixed]}
    print(f"  deterministic cuDNN: repeats {rows['deterministic cuDNN']['repeats_apart']:.2f} grey levels apart, "
          f"{fixed[2].elapsed:.2f} s per job", flush=True)
    contact_sheet(run.out / "gpu-stability.png", pictures, height=150)
    return rows


def crop(image: Image.Image, side: int = 320) -> Image.Image:
    """A full-resolution window from the top-left quarter: detail and the border both show in it."""
    return image.crop((0, 0, min(side, image.width), min(side, image.height)))


def border_section(run: Run) -> dict:
    _, iterations = run.plan.job
    rows = {}
    for size in run.plan.border_sizes:
        images = {}
        for mode in ("zeros", FRAMED):
            with border_setting(mode):
                result, _ = run.job(size, iterations, engine=Engine(run.weights))
            images[mode] = result.image
            rows[f"{size} {mode}"] = {"border": border_jump(result.image), "inside": inner_jump(result.image),
                                      "seconds": result.elapsed}
            row = rows[f"{size} {mode}"]
            print(f"  {size} px {mode:8s}: border {row['border']:.4f} / inside {row['inside']:.4f} = "
                  f"{row['border'] / row['inside']:.2f}, {row['seconds']:.2f} s", flush=True)
        content = run.content.resize(images["zeros"].size, Image.Resampling.LANCZOS)
        rows[f"{size} content"] = {"border": border_jump(content), "inside": inner_jump(content)}
        contact_sheet(run.out / f"gpu-border-{size}.png",
                      [("content (corner)", crop(content)), ("zeros (corner)", crop(images["zeros"])),
                       (f"{FRAMED} (corner)", crop(images[FRAMED])), ("zeros", images["zeros"]),
                       (FRAMED, images[FRAMED])], height=240)
    return rows


def detail_section(run: Run) -> dict:
    size, iterations, long_iterations = run.plan.detail
    with setting(options_module, "FINEST_SHARE", 0.0):
        before, _ = run.job(size, iterations)
        old_schedule = run.options(size, iterations).schedule()
    after, _ = run.job(size, iterations)
    long, _ = run.job(size, long_iterations, min_scale=size)
    energy = {name: high_frequency_energy(result.image) for name, result in
              (("before", before), ("after", after), ("long", long))}
    seconds = {"before": before.elapsed, "after": after.elapsed, "long": long.elapsed}
    print(f"  {size} px, {iterations} its: finest scale {old_schedule[-1].iterations} → "
          f"{run.options(size, iterations).schedule()[-1].iterations} its; high-frequency energy "
          f"{energy['before'] / energy['long']:.2f} → {energy['after'] / energy['long']:.2f} of a {long_iterations}-"
          f"iteration full-size run; {seconds['before']:.2f} s → {seconds['after']:.2f} s "
          f"(long run {seconds['long']:.2f} s)", flush=True)
    contact_sheet(run.out / f"gpu-detail-{size}.png",
                  [("content (corner)", crop(run.content.resize(after.image.size, Image.Resampling.LANCZOS))),
                   ("before: 8:4:2:1", crop(before.image)), ("after: finest >= 1/5", crop(after.image)),
                   (f"long: {long_iterations} its at full size", crop(long.image))], height=320)
    return {"size": list(after.image.size), "iterations": iterations, "long_iterations": long_iterations,
            "finest_iterations_before": old_schedule[-1].iterations, "energy": energy, "seconds": seconds,
            "energy_ratio_to_long": {name: value / energy["long"] for name, value in energy.items()}}


def quality_section(run: Run) -> dict:
    rows = {}
    content = engine_bench.content_scene()  # the CPU benchmark's 640×480 scene, so the figures compare
    for mode in ("zeros", FRAMED):
        report: dict = {}
        ladder_dir = run.out / f"ladder-{mode.replace(' ', '-')}"
        ladder_dir.mkdir(exist_ok=True)
        with border_setting(mode):
            engine_bench.quality_section(run.plan.quality, Path(run.weights), content, run.style, ladder_dir, report,
                                         run.device_name, run.precision)
        rows[mode] = report["time_to_quality"]
        row = rows[mode]
        print(f"  {mode}: reference {row['reference_seconds']:.2f} s to {row['reference_score']:.4f}; engine "
              f"{row['engine_seconds']} s (ratio {row['ratio']})", flush=True)
    return rows


def compile_section(run: Run) -> dict:
    report: dict = {}
    engine_bench.compile_section(engine_bench.Plan(**{**engine_bench.FULL.__dict__, "speed_iterations": 10}),
                                 Path(run.weights), run.content.resize((640, 480)), report, run.device_name)
    row = report["compile"]
    print(f"  compile at {row['size']}: eager {row['eager_s'] * 1000:.1f} ms/pass, compiled "
          f"{row['compiled_s'] * 1000:.1f} ms/pass, first compiled pass {row['first_compiled_pass_s']:.1f} s",
          flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="the engine's precision in every section but layout and precision")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets (checks the script)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)")
    parser.add_argument("--budget", type=float, default=3600.0, help="start no section after this many seconds")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = Run(QUICK if args.quick else FULL, args.device, args.precision, args.out)
    run.report["precision"] = args.precision
    print(json.dumps(run.report["device"]), flush=True)
    for name in args.only or SECTIONS:
        spent = time.perf_counter() - started
        if spent > args.budget:
            run.report[name] = {"skipped": f"budget of {args.budget:.0f} s spent"}
            continue
        print(f"{name} … ({spent:.0f} s in)", flush=True)
        try:
            run.report[name] = globals()[f"{name}_section"](run)
        except Exception as error:  # recorded, and the other sections still run
            traceback.print_exc()
            run.report[name] = {"error": f"{type(error).__name__}: {error}"}
        (args.out / "gpu.json").write_text(json.dumps(run.report, indent=2, default=str))
    run.report["wall_s"] = time.perf_counter() - started
    (args.out / "gpu.json").write_text(json.dumps(run.report, indent=2, default=str))
    print(f"wrote {args.out / 'gpu.json'} in {run.report['wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
