"""How close the engine runs to the machine's FLOP floor, and the standard job against another checkout (main).

    python benchmarks/speed_floor.py                    # per-iteration table + standard job vs /work/main-like tree
    python benchmarks/speed_floor.py --baseline-tree PATH --job-rounds 2 --only jobs --only iterations
    python benchmarks/speed_floor.py --quick            # tiny sizes: checks the script in a minute

One run measures, interleaved (A B A B …) so that a shared machine's drift hits both sides alike:
- the machine: CPU flags that matter (avx2, avx512_bf16, amx_bf16), threads, load average before and after, and
  matmul GFLOP/s in fp32 (and bf16 where it is native) before and after the sections, the best of them the peak
  the floor is computed from;
- seconds per iteration (wall and CPU) at each scale of the standard job (128, 256, 512 px long side), the engine
  with its weights reordered per call (``packed_weights=False``, as before this round) against the default, and the
  classic reference (benchmarks/reference.py) at the output size; each against the FLOP floor of the picture
  (forward + input gradient through VGG19 to relu5_1, ``vgg_flops``) at the best native precision, and against
  the floor of the picture with its mirrored frame (nst_engine/layers.py; the network's whole work), as are the
  fresh processes' figures of ``--only trees``;
- the Gram of the five style maps (forward + backward) from a cropped view against the whole framed map;
- seconds per iteration at each scale in fresh processes with OpenMP's idle threads spinning a little (the
  engine's default), sleeping at once and spinning (``WAIT_SETTINGS``, ``--only threads``);
- seconds per iteration at each scale in fresh processes, this tree against ``--baseline-tree``, the order
  swapped every round (``--only trees``);
- the standard job (512 px, 80 iterations) in a fresh process per run, this tree against ``--baseline-tree``
  (a checkout of main), alternating, with wall and CPU seconds and the ratio of each pair, and each scale's
  seconds (its first iteration, which makes the scale's targets, apart).

Writes ``benchmarks/out/speed-floor.json`` (``--out`` to change). Quote ratios; absolute seconds move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Each tree's standard job gets the environment the benchmark was started with, not nst_engine's default below.
STARTED_ENV = dict(os.environ)
import nst_engine  # noqa: E402,F401  (before torch: it sets the OpenMP wait policy torch starts with)
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.engine import STYLE_FILE, content_scene, matmul_gflops, vgg_flops  # noqa: E402
from benchmarks.reference import GatysObjective, image_tensor, load_classic_vgg, run_reference  # noqa: E402
from nst_engine.images import scaled_size  # noqa: E402
from nst_engine.layers import frame_for  # noqa: E402
from nst_engine.losses import _Gram, gram  # noqa: E402
from nst_engine.network import FramedMap, VGGEncoder  # noqa: E402
from nst_engine.options import QUALITY_LEVELS, StylizeOptions  # noqa: E402
from nst_engine.testing import write_random_vgg19  # noqa: E402
from nst_engine.transfer import Engine, cpu_has_native_bf16  # noqa: E402

# One standard job in a fresh process of the given tree: prints {"wall": s, "cpu": s, "engine": path, "scales": …},
# each scale with its picture, iterations, seconds, and its first iteration (which makes the scale's targets).
JOB_SCRIPT = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from PIL import Image
import nst_engine
from nst_engine.options import QUALITY_LEVELS, StylizeOptions
from nst_engine.transfer import Engine
content, style = Image.open(sys.argv[3]), Image.open(sys.argv[4]).convert("RGB")
level = QUALITY_LEVELS["standard"]
engine = Engine(sys.argv[2])
reports = []
wall, cpu = time.perf_counter(), time.process_time()
engine.stylize(content, [style], StylizeOptions(size=level.size, iterations=level.iterations, precision=sys.argv[5]),
               on_progress=lambda p: reports.append((time.perf_counter(), (p.width, p.height))))
done = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "engine": nst_engine.__file__}
scales, last = {}, wall
for stamp, picture in reports:
    scales.setdefault(picture, []).append(stamp - last)
    last = stamp
done["scales"] = [{"picture": list(picture), "iterations": len(times), "seconds": sum(times), "first": times[0],
                   "median": statistics.median(times)} for picture, times in scales.items()]
print(json.dumps(done))
"""


# Seconds per iteration at one scale in a fresh process (its OpenMP settings come from its environment).
ITERATION_SCRIPT = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from PIL import Image
from nst_engine.options import StylizeOptions
from nst_engine.transfer import Engine
size, iterations = int(sys.argv[5]), int(sys.argv[6])
stamps = []
Engine(sys.argv[2]).stylize(Image.open(sys.argv[3]), [Image.open(sys.argv[4]).convert("RGB")],
                            StylizeOptions(size=size, min_scale=size, iterations=iterations + 1),
                            on_progress=lambda _: stamps.append(time.perf_counter()))
print(json.dumps({"seconds": statistics.median(b - a for a, b in zip(stamps, stamps[1:]))}))
"""


def machine(report: dict) -> float:
    """Records the machine and its matmul peak in fp32 (and bf16 where it is native), each a list that
    :func:`floors` adds a later measurement to; returns the peak of the best native precision."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    native_bf16 = cpu_has_native_bf16()
    report["machine"] = {
        "flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "threads": torch.get_num_threads(), "load_before": os.getloadavg(),
        "matmul_gflops_fp32": [matmul_gflops(torch.float32)],
        "matmul_gflops_bf16": [matmul_gflops(torch.bfloat16)] if native_bf16 else None,
        "floor_precision": "bf16" if native_bf16 else "fp32"}
    return (report["machine"]["matmul_gflops_bf16"] or report["machine"]["matmul_gflops_fp32"])[0]


def floors(content: Image.Image, report: dict) -> None:
    """Measures the matmul peak again after the sections and puts every per-iteration figure against the floor from
    the best peak seen: a peak measured while a neighbour woke (once 218 GFLOP/s bf16 where the same VM gave 410
    a minute later) would put an iteration below its floor."""
    facts = report["machine"]
    peaks = facts[f"matmul_gflops_{facts['floor_precision']}"]
    peaks.append(matmul_gflops(torch.float32 if facts["floor_precision"] == "fp32" else torch.bfloat16))
    peak = facts["floor_peak_gflops"] = max(peaks)
    rows = [(row["size"], row["variant"], row["wall_s"], row) for row in report.get("per_iteration", [])]
    rows += [(list(scaled_size(*content.size, row["size"])), f"{name}, fresh processes",
              statistics.median(row["seconds"][name]), row)
             for row in report.get("tree_iterations", []) for name in ("this tree", "baseline")]
    for (width, height), name, wall, row in rows:
        floor = 2 * vgg_flops(width, height) / (peak * 1e9)
        frame = 2 * frame_for((height, width))
        framed = 2 * vgg_flops(width + frame, height + frame) / (peak * 1e9)
        row.setdefault("x_floor", {})[name] = wall / floor
        row.setdefault("x_framed_floor", {})[name] = wall / framed
        print(f"{width}x{height} {name:48s} {wall:7.3f} s  {wall / floor:5.2f}x the floor ({floor:.3f} s at "
              f"{peak:.0f} GFLOP/s {facts['floor_precision']}), {wall / framed:5.2f}x the framed picture's",
              flush=True)


def engine_iteration(engine: Engine, content: Image.Image, style: Image.Image, size: int, iterations: int
                     ) -> tuple[float, float]:
    """Median wall and CPU seconds of one iteration at a single scale of ``size`` (the first left out)."""
    stamps: list[tuple[float, float]] = []
    options = StylizeOptions(size=size, min_scale=size, iterations=iterations + 1)
    engine.stylize(content, [style], options,
                   on_progress=lambda _: stamps.append((time.perf_counter(), time.process_time())))
    walls = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
    cpus = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    return statistics.median(walls), statistics.median(cpus)


def reference_iteration(weights: Path, content: Image.Image, style: Image.Image, size: int, iterations: int
                        ) -> tuple[float, float]:
    width, height = scaled_size(*content.size, size)
    objective = GatysObjective(load_classic_vgg(weights), image_tensor(content.resize((width, height))),
                               image_tensor(style.resize((size, size))), 1.0, 1.0)
    cpu = time.process_time()
    times = run_reference(objective, iterations + 1).seconds_per_iteration
    return statistics.median(times[1:]), (time.process_time() - cpu) / len(times)


def per_iteration(weights: Path, content: Image.Image, style: Image.Image, sizes: list[int], iterations: int,
                  rounds: int, report: dict) -> None:
    variants = {"engine, weights reordered per call (before)": Engine(str(weights), packed_weights=False),
                "engine (default: packed weights)": Engine(str(weights))}
    rows = []
    for size in sizes:
        width, height = scaled_size(*content.size, size)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        if size == sizes[-1]:
            samples["classic reference (NCHW fp32)"] = []
        for _ in range(rounds):
            for name, engine in variants.items():
                samples[name].append(engine_iteration(engine, content, style, size, iterations))
            if "classic reference (NCHW fp32)" in samples:
                samples["classic reference (NCHW fp32)"].append(
                    reference_iteration(weights, content, style, size, iterations))
        base = variants and next(iter(samples))
        for name, values in samples.items():
            ratios = [wall / base_wall for (wall, _), (base_wall, _) in zip(values, samples[base])]
            wall = statistics.median(v[0] for v in values)
            rows.append({"size": [width, height], "variant": name, "wall_s": wall,
                         "cpu_s": statistics.median(v[1] for v in values), "x_before_per_round": ratios})
            print(f"{width}x{height} {name:48s} {wall:7.3f} s  cpu {rows[-1]['cpu_s']:7.3f} s  "
                  f"x before {statistics.median(ratios):.3f}", flush=True)
    report["per_iteration"] = rows


def gram_section(content: Image.Image, size: int, rounds: int, report: dict) -> None:
    """Gram forward + backward of the style layers' maps at ``size``, interleaved, the rest of the iteration left
    out: in fp32 a cropped view (round one) against the whole framed map with its box (``FramedMap``); in bf16
    (where it is native) the crop raised to fp32 whole (``_Gram``, round one) against ``_LowPrecisionGram``."""
    width, height = scaled_size(*content.size, size)
    frame = frame_for((height, width))
    report["gram"] = {"size": [width, height]}
    for dtype in (torch.float32, torch.bfloat16) if cpu_has_native_bf16() else (torch.float32,):
        maps = []
        for stride, channels in ((1, 64), (2, 128), (4, 256), (8, 512), (16, 512)):
            full = torch.rand(1, channels, -(-(height + 2 * frame) // stride), -(-(width + 2 * frame) // stride))
            box = VGGEncoder._box(stride, frame, (height, width))
            maps.append((full.to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_(True), box))

        def run(now: bool) -> float:
            started = time.perf_counter()
            for full, (rows, cols) in maps:
                crop = full[..., rows[0]:rows[1], cols[0]:cols[1]]
                result = gram(FramedMap(full, rows, cols)) if now else (
                    gram(crop) if dtype == torch.float32 else _Gram.apply(crop))
                result.pow(2).sum().backward()
            return time.perf_counter() - started

        names = ("crop view (before)", "whole map + box (now)") if dtype == torch.float32 else (
            "crop raised to fp32 (before)", "bf16 chunks summed in fp32 (now)")
        timings: dict[str, list[float]] = {name: [] for name in names}
        run(False), run(True)
        for _ in range(rounds * 5):
            timings[names[0]].append(run(False))
            timings[names[1]].append(run(True))
        ratios = [a / b for a, b in zip(timings[names[1]], timings[names[0]])]
        report["gram"][str(dtype).removeprefix("torch.")] = {
            "seconds": {k: statistics.median(v) for k, v in timings.items()}, "ratio_per_round": ratios}
        print(f"Gram of the five style maps at {width}x{height} in {dtype}, forward + backward: "
              + ", ".join(f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in timings.items())
              + f"; now / before {statistics.median(ratios):.3f}", flush=True)


def standard_jobs(weights: Path, content: Image.Image, baseline: Path, rounds: int, precision: str,
                  report: dict) -> None:
    """The standard job at ``precision`` in a fresh process, this tree and the baseline tree alternately."""
    with tempfile.TemporaryDirectory() as scratch:
        content_file = Path(scratch) / "content.png"
        content.save(content_file)
        trees = {"this tree": REPO, "baseline": baseline}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                out = subprocess.run([sys.executable, "-c", JOB_SCRIPT, str(tree), str(weights), str(content_file),
                                      str(STYLE_FILE), precision], capture_output=True, text=True, check=True,
                                     cwd=tree, env=STARTED_ENV)
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                run = runs[name][-1]
                print(f"standard job, {name}: {run['wall']:.1f} s wall, {run['cpu']:.1f} s CPU ({run['engine']}); "
                      + ", ".join(f"{s['picture'][0]}x{s['picture'][1]} {s['iterations']} its {s['seconds']:.1f} s "
                                  f"(first {s['first']:.2f}, median {s['median']:.3f})" for s in run["scales"]),
                      flush=True)
    ratios = [a["wall"] / b["wall"] for a, b in zip(runs["this tree"], runs["baseline"])]
    cpu_ratios = [a["cpu"] / b["cpu"] for a, b in zip(runs["this tree"], runs["baseline"])]
    report["standard_job"] = {"baseline_tree": str(baseline), "precision": precision, "runs": runs,
                              "wall_ratio_per_pair": ratios, "cpu_ratio_per_pair": cpu_ratios}
    print(f"standard job, this tree / baseline: wall {statistics.median(ratios):.3f} "
          f"(pairs {', '.join(f'{r:.3f}' for r in ratios)}), CPU {statistics.median(cpu_ratios):.3f}")


def fresh_iteration(tree: Path, weights: Path, content_file: Path, size: int, iterations: int, env: dict) -> float:
    """Median seconds per iteration at one scale of ``size``, in a fresh process running ``tree``'s engine."""
    out = subprocess.run([sys.executable, "-c", ITERATION_SCRIPT, str(tree), str(weights), str(content_file),
                          str(STYLE_FILE), str(size), str(iterations)], check=True, capture_output=True, text=True,
                         cwd=tree, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


# The OpenMP settings ``--only threads`` compares, each over the environment the benchmark was started with less
# its own OMP_WAIT_POLICY and GOMP_SPINCOUNT; the first is nst_engine's default, the one the others are put against.
WAIT_SETTINGS = {"spin briefly, then sleep (default)": {}, "sleep at once (PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE"},
                 "spin (ACTIVE)": {"OMP_WAIT_POLICY": "ACTIVE"}}


def wait_policies(weights: Path, content: Image.Image, sizes: list[int], rounds: int, report: dict) -> None:
    """Per iteration with OpenMP's idle threads spinning a little (nst_engine's ``GOMP_SPINCOUNT``), sleeping at
    once (``OMP_WAIT_POLICY=PASSIVE``, the default of rounds three to seven) and spinning (``ACTIVE``), fresh
    processes, the order reversed every round."""
    rows, default = [], next(iter(WAIT_SETTINGS))
    base = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    with tempfile.TemporaryDirectory() as scratch:
        content_file = Path(scratch) / "content.png"
        content.save(content_file)
        for size in sizes:
            seconds: dict[str, list[float]] = {name: [] for name in WAIT_SETTINGS}
            for turn in range(rounds):
                for name in list(WAIT_SETTINGS)[::1 if turn % 2 == 0 else -1]:
                    seconds[name].append(fresh_iteration(REPO, weights, content_file, size, 4,
                                                         {**base, **WAIT_SETTINGS[name]}))
            ratios = {name: [a / b for a, b in zip(values, seconds[default])] for name, values in seconds.items()}
            rows.append({"size": size, "seconds": seconds, "over_default_per_round": ratios})
            print(f"{size} px per iteration: " + "; ".join(
                f"{name} {statistics.median(seconds[name]):.3f} s ({statistics.median(ratios[name]):.3f}x)"
                for name in WAIT_SETTINGS), flush=True)
    report["wait_policies"] = {"load_average": os.getloadavg(), "sizes": rows}


def tree_iterations(weights: Path, content: Image.Image, baseline: Path, sizes: list[int], rounds: int,
                    report: dict) -> None:
    """Per iteration at each scale, this tree against ``baseline`` in fresh processes, the order swapped every
    round (A B, B A, …) so that neither side always runs first on a drifting machine."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        content_file = Path(scratch) / "content.png"
        content.save(content_file)
        for size in sizes:
            seconds: dict[str, list[float]] = {"this tree": [], "baseline": []}
            trees = {"this tree": REPO, "baseline": baseline}
            for turn in range(rounds):
                for name in (("this tree", "baseline") if turn % 2 == 0 else ("baseline", "this tree")):
                    seconds[name].append(fresh_iteration(trees[name], weights, content_file, size, 6, STARTED_ENV))
            ratios = [a / b for a, b in zip(seconds["this tree"], seconds["baseline"])]
            rows.append({"size": size, "baseline_tree": str(baseline), "seconds": seconds, "ratio_per_round": ratios})
            print(f"{size} px per iteration: this tree {statistics.median(seconds['this tree']):.3f} s, baseline "
                  f"{statistics.median(seconds['baseline']):.3f} s; this tree / baseline {statistics.median(ratios):.3f}"
                  f" (rounds {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)
    report["tree_iterations"] = rows


def save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round: checks the script")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size")
    parser.add_argument("--job-rounds", type=int, default=2, help="standard-job pairs (0: skip the jobs)")
    parser.add_argument("--baseline-tree", type=Path, default=Path("/work/main"),
                        help="a checkout whose nst_engine the standard job is compared with")
    parser.add_argument("--only", action="append", choices=("gram", "jobs", "iterations", "threads", "trees"),
                        help="run only these sections, in this order (repeatable; default: all)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="the standard jobs' precision (both trees)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "speed-floor.json")
    args = parser.parse_args()
    level = QUALITY_LEVELS["standard"]
    sizes = [64, 96] if args.quick else sorted({s.long_side for s in StylizeOptions(size=level.size).schedule()})
    report: dict = {"command": sys.argv[1:]}
    with tempfile.TemporaryDirectory() as scratch:
        weights = write_random_vgg19(Path(scratch) / "vgg19-random.pth")
        content, style = content_scene(), Image.open(STYLE_FILE).convert("RGB")
        machine(report)
        sections = {
            "gram": lambda: gram_section(content, sizes[-1], 1 if args.quick else args.rounds, report),
            "jobs": lambda: standard_jobs(weights, content, args.baseline_tree.resolve(), args.job_rounds,
                                  args.precision, report)
            if args.job_rounds and not args.quick else None,
            "trees": lambda: tree_iterations(weights, content, args.baseline_tree.resolve(), sizes,
                                             1 if args.quick else 2 * args.rounds, report),
            "threads": lambda: wait_policies(weights, content, sizes, 1 if args.quick else args.rounds, report),
            "iterations": lambda: per_iteration(weights, content, style, sizes, 2 if args.quick else 3,
                                                1 if args.quick else args.rounds, report)}
        for name in args.only or sections:
            sections[name]()
            save(report, args.out)  # after each section: a long run on a loaded machine keeps what it measured
        floors(content, report)
    report["machine"]["load_after"] = os.getloadavg()
    save(report, args.out)
    print(f"load average before {report['machine']['load_before']}, after {report['machine']['load_after']}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
