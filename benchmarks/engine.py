"""Speed and quality of nst_engine against the classic Gatys recipe, measured in one run on this machine.

    python benchmarks/engine.py            # full run (about 25 minutes on 2 CPU cores)
    python benchmarks/engine.py --quick    # small sizes and budgets, a couple of minutes: checks the script

Both sides use the same seeded random VGG19 file and the same content/style pair. Prints a table and writes
``benchmarks/out/{full,quick}/engine.json`` and ``contact-sheet.png`` there (content | style | reference | each
quality level). ``--only SECTION`` runs part of it and writes ``engine-SECTION.json`` instead.
Sections: matmul throughput and the FLOP floor; seconds per iteration at 512 px; time to reach the
reference's quality under one evaluator (the classic objective); each quality level's default job in its own
process (wall time, peak RSS); jobs per minute with the same jobs run one by one and as one batch
(``Engine.stylize_batch``, what the bot does with ``[engine] batch_size``); what ``torch.compile`` of the
network costs (first pass) and saves (each later pass) at the per-iteration size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.reference import GatysObjective, image_tensor, load_classic_vgg, run_reference  # noqa: E402
from nst_engine.images import scaled_size  # noqa: E402
from nst_engine.layers import VGG19_CONFIG  # noqa: E402
from nst_engine.options import QUALITY_LEVELS, StylizeOptions  # noqa: E402
from nst_engine.transfer import (BatchRequest, Engine, cpu_has_native_bf16, resolve_device, resolve_precision,  # noqa: E402
                                 to_tensor)

STYLE_FILE = REPO / "bot" / "assets" / "presets" / "mosaic.png"


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets of one benchmark run."""

    speed_size: int  # long side for the per-iteration comparison
    speed_iterations: int
    quality_size: int  # long side for time to quality
    reference_iterations: int
    checkpoint_every: int
    ladder: tuple[int, ...]  # engine iteration budgets tried, smallest first
    level_scale: float  # quality levels run at this fraction of their size and iterations
    batch_jobs: int  # jobs run one by one, then as one batch
    batch_job_size: int
    batch_job_iterations: int


FULL = Plan(512, 3, 384, 300, 25, (25, 50, 100, 200), 1.0, 4, 256, 30)
QUICK = Plan(192, 2, 128, 40, 10, (10, 20, 40), 0.25, 2, 96, 6)
# The evaluator's own objective (max pooling, no smoothness term) run with the engine's recipe: separates what
# the multi-scale recipe gains in speed from what the engine's different default objective costs in score.
SAME_OBJECTIVE = {"pooling": "max", "tv_weight": 0.0}


SKIES = ("gradient", "flat", "reversed")


def content_scene(width: int = 640, height: int = 480, sky: str = "gradient") -> Image.Image:
    """A drawn landscape (sky, sun, hills, house, tree): clear shapes whose survival is easy to judge. ``sky``:
    its sky darkens towards the top (``gradient``), is one colour (``flat``) or darkens towards the hills
    (``reversed``): the border benchmark's controls for a band that follows the sky's darkest blue."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = {"gradient": y / height, "flat": 0.3, "reversed": max(0.62 - y / height, 0.0)}[sky]
        draw.line([(0, y), (width, y)], fill=(int(90 + 120 * t), int(150 + 70 * t), int(235 - 40 * t)))
    draw.ellipse([width * 0.72, height * 0.08, width * 0.86, height * 0.27], fill=(255, 214, 90))
    draw.polygon([(0, height * 0.62), (width * 0.3, height * 0.38), (width * 0.62, height * 0.64)], fill=(96, 120, 140))
    draw.polygon([(width * 0.35, height * 0.66), (width * 0.7, height * 0.42), (width, height * 0.63), (width, height * 0.7)],
                 fill=(80, 100, 124))
    draw.rectangle([0, height * 0.63, width, height], fill=(92, 150, 70))
    house = (width * 0.18, height * 0.58, width * 0.42, height * 0.82)
    draw.rectangle(house, fill=(222, 200, 170))
    draw.polygon([(house[0] - 12, house[1]), ((house[0] + house[2]) / 2, height * 0.44), (house[2] + 12, house[1])],
                 fill=(170, 60, 50))
    draw.rectangle([width * 0.27, height * 0.7, width * 0.32, height * 0.82], fill=(90, 60, 40))
    draw.rectangle([width * 0.21, height * 0.62, width * 0.25, height * 0.67], fill=(120, 170, 220))
    draw.rectangle([width * 0.35, height * 0.62, width * 0.39, height * 0.67], fill=(120, 170, 220))
    draw.rectangle([width * 0.68, height * 0.62, width * 0.7, height * 0.8], fill=(100, 70, 45))
    draw.ellipse([width * 0.6, height * 0.45, width * 0.78, height * 0.66], fill=(40, 110, 50))
    return image


def vgg_flops(width: int, height: int, last_index: int = 29) -> float:
    """FLOPs of one forward pass through VGG19 ``features[:last_index + 1]`` (convs only) at width×height."""
    flops, index, channels = 0.0, 0, 3
    for item in VGG19_CONFIG:
        if index > last_index:
            break
        if item == "M":
            width, height, index = math.ceil(width / 2), math.ceil(height / 2), index + 1
        else:
            flops += 2 * 9 * channels * item * width * height
            channels, index = item, index + 2
    return flops


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """The best of ``repeats`` timed products: the machine's peak, as little disturbed by neighbours as we get."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def engine_seconds_per_iteration(engine: Engine, content: Image.Image, style: Image.Image, size: int,
                                 iterations: int, **overrides: object) -> float:
    """Median time of the engine's iterations at one scale of ``size``, the first (warm-up) left out."""
    stamps: list[float] = []
    options = StylizeOptions(size=size, min_scale=size, iterations=iterations + 1, **overrides)
    engine.stylize(content, [style], options, on_progress=lambda p: stamps.append(p.elapsed))
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def speed_section(plan: Plan, weights: Path, content: Image.Image, style: Image.Image, report: dict) -> None:
    size = plan.speed_size
    width, height = scaled_size(*content.size, size)
    fp32 = matmul_gflops(torch.float32)
    native_bf16 = cpu_has_native_bf16()
    bf16 = matmul_gflops(torch.bfloat16, n=2048 if native_bf16 else 512, repeats=5 if native_bf16 else 1)
    flops = 2 * vgg_flops(width, height)  # forward + input gradient, which costs the same as the forward
    precision = resolve_precision("auto", torch.device("cpu"))
    peak = bf16 if precision == torch.bfloat16 else fp32
    report["machine"] = {"matmul_gflops_fp32": fp32, "matmul_gflops_bf16": bf16, "native_bf16": native_bf16,
                         "threads": torch.get_num_threads(), "engine_precision": str(precision or "fp32")}

    network = load_classic_vgg(weights)
    objective = GatysObjective(network, image_tensor(content.resize((width, height))),
                               image_tensor(style.resize((size, size))), 1.0, 1.0)
    reference = run_reference(objective, plan.speed_iterations + 1).seconds_per_iteration[1:]
    reference_s = statistics.median(reference)
    rows = {"reference (NCHW fp32, max pool)": reference_s}
    rows["engine, NCHW"] = engine_seconds_per_iteration(Engine(str(weights), channels_last=False), content, style,
                                                        size, plan.speed_iterations)
    rows["engine (default: channels_last, auto precision)"] = engine_seconds_per_iteration(
        Engine(str(weights)), content, style, size, plan.speed_iterations)
    report["per_iteration"] = {
        "size": [width, height], "gflop_per_iteration": flops / 1e9,
        "flop_floor_s": flops / (peak * 1e9),
        "seconds": rows,
        "ratio_to_reference": {name: seconds / reference_s for name, seconds in rows.items()},
    }


def batching_section(plan: Plan, weights: Path, content: Image.Image, style: Image.Image, report: dict) -> None:
    """The same jobs (one size, different strengths and seeds) one by one, then as one batch."""
    engine = Engine(str(weights))
    options = StylizeOptions(size=plan.batch_job_size, iterations=plan.batch_job_iterations)
    jobs = [BatchRequest(content, [style], options.replace(strength=2.0 ** (i % 3 - 1), seed=i))
            for i in range(plan.batch_jobs)]
    engine.stylize(content, [style], options.replace(iterations=2))  # loads the network, warms the kernels
    started = time.perf_counter()
    for job in jobs:
        engine.stylize(job.content, job.styles, job.options)
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    results = engine.stylize_batch(jobs)
    batched = time.perf_counter() - started
    assert all(result.batch_size == len(jobs) for result in results)
    report["batching"] = {
        "jobs": len(jobs), "size": list(scaled_size(*content.size, options.size)), "iterations": options.iterations,
        "device": results[0].device, "one_by_one_s": one_by_one, "batched_s": batched,
        "jobs_per_minute_one_by_one": 60 * len(jobs) / one_by_one, "jobs_per_minute_batched": 60 * len(jobs) / batched,
        "throughput_ratio": one_by_one / batched,
    }


def compile_section(plan: Plan, weights: Path, content: Image.Image, report: dict, device_name: str = "cpu") -> None:
    """torch.compile on the engine's network: its one-off cost per image shape against what each pass saves.
    Each pass runs as the engine runs it on that device (autocast where the engine would use it)."""
    device = resolve_device(device_name)
    precision = resolve_precision("auto", device)
    defaults = StylizeOptions()
    layers = (defaults.content_layer, *defaults.style_layers)
    engine = Engine(str(weights))
    encoder = engine.encoder(device, defaults.pooling, "relu5_1")
    width, height = scaled_size(*content.size, plan.speed_size)
    image = to_tensor(content.resize((width, height)), device).contiguous(memory_format=engine.memory_format)
    image.requires_grad_(True)

    def timed_pass(network: torch.nn.Module) -> float:
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=precision, enabled=precision is not None):
            features = network(image, layers)
            total = sum(feature.float().square().mean() for feature in features.values())
        total.backward()
        image.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def per_pass(network: torch.nn.Module) -> float:
        return statistics.median(timed_pass(network) for _ in range(plan.speed_iterations))

    timed_pass(encoder)
    eager = per_pass(encoder)
    compiled = torch.compile(encoder)
    first = timed_pass(compiled)
    fast = per_pass(compiled)
    saved = eager - fast
    report["compile"] = {
        "size": [width, height], "device": str(device), "precision": str(precision or "fp32"),
        "eager_s": eager, "compiled_s": fast, "first_compiled_pass_s": first,
        "compile_s": first - fast,
        "break_even_iterations": (first - fast) / saved if saved > 0 else None,
    }


def quality_section(plan: Plan, weights: Path, content: Image.Image, style: Image.Image, out: Path,
                    report: dict, device_name: str = "auto", precision: str = "auto") -> None:
    """The reference and the engine on the same device (the engine's default: a GPU where there is one)."""
    defaults = StylizeOptions(device=device_name, precision=precision)
    device = resolve_device(device_name)
    size = plan.quality_size
    width, height = scaled_size(*content.size, size)
    network = load_classic_vgg(weights).to(device)
    objective = GatysObjective(network, image_tensor(content.resize((width, height), Image.Resampling.LANCZOS)).to(device),
                               image_tensor(style.resize((size, size), Image.Resampling.LANCZOS)).to(device),
                               defaults.content_weight, defaults.style_weight)
    reference = run_reference(objective, plan.reference_iterations, plan.checkpoint_every)
    reference.image.save(out / "reference.png")
    target = reference.checkpoints[-1][2]
    reference_time = reference.checkpoints[-1][1]
    engine = Engine(str(weights))


    def attempt(budget: int, recipe: str, **changes: object) -> dict:
        result = engine.stylize(content, [style], defaults.replace(size=size, iterations=budget, **changes))
        result.image.save(out / f"engine-{recipe}-{budget}.png")
        score = objective.score(result.image)
        print(f"  engine {recipe:15s} {budget:4d} its: {result.elapsed:7.1f} s, score {score:.4f} "
              f"(reference {target:.4f})", flush=True)
        return {"recipe": recipe, "iterations": budget, "changes": changes, "seconds": result.elapsed,
                "score": score, "reached": score <= target}

    def climb(recipe: str, **changes: object) -> list[dict]:
        """The recipe with growing budgets, until one reaches the reference's score."""
        rows = []
        for budget in plan.ladder:
            rows.append(attempt(budget, recipe, **changes))
            if rows[-1]["reached"]:
                break
        return rows

    ladder = climb("default")
    other = "adam" if defaults.optimizer == "lbfgs" else "lbfgs"
    ladder.append(attempt(ladder[-1]["iterations"], other, optimizer=other))  # the other optimiser, same budget
    if not ladder[-2]["reached"]:
        ladder += climb("same-objective", **SAME_OBJECTIVE)
        ladder += climb("max-pooling", pooling="max")  # which of the two differences costs the score

    def first_time(recipe: str) -> float | None:
        return next((row["seconds"] for row in ladder if row["reached"] and row["recipe"] == recipe), None)

    report["time_to_quality"] = {
        "size": [width, height], "device": str(device), "precision": precision, "reference_iterations": plan.reference_iterations,
        "reference_seconds": reference_time, "reference_score": target,
        "reference_checkpoints": reference.checkpoints,
        "content_image_score": objective.score(content),
        "engine_ladder": ladder,
        "engine_seconds": first_time("default"),
        **{f"{key}ratio": seconds / reference_time if seconds is not None else None
           for key, seconds in (("", first_time("default")), ("same_objective_", first_time("same-objective")),
                                ("max_pooling_", first_time("max-pooling")))},
    }


def run_job(spec: dict) -> dict:
    """Child-process side: load the engine, run one job, report times and this process's peak RSS."""
    started = time.perf_counter()
    engine = Engine(spec["weights"])
    loaded = time.perf_counter()
    options = StylizeOptions(size=spec["size"], iterations=spec["iterations"])
    result = engine.stylize(Image.open(spec["content"]), [Image.open(spec["style"])], options)
    result.image.save(spec["output"])
    return {"load_s": loaded - started, "job_s": result.elapsed, "iterations": result.iterations,
            "peak_rss_mb": peak_rss_mb(), "size": list(result.image.size)}


def peak_rss_mb() -> float:
    """This process's peak resident set. Linux keeps ``ru_maxrss`` across exec (a child would report its
    parent's peak), so read the per-address-space high-water mark VmHWM where there is one."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def levels_section(plan: Plan, weights: Path, content_file: Path, out: Path, report: dict) -> None:
    rows = {}
    for name, level in QUALITY_LEVELS.items():
        spec = {"weights": str(weights), "content": str(content_file), "style": str(STYLE_FILE),
                "size": max(64, round(level.size * plan.level_scale)),
                "iterations": max(2, round(level.iterations * plan.level_scale)),
                "output": str(out / f"level-{name}.png")}
        started = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, "--job", json.dumps(spec)], capture_output=True,
                               text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row.update(process_wall_s=time.perf_counter() - started, requested=[spec["size"], spec["iterations"]])
        rows[name] = row
        print(f"  {name}: {row['job_s']:.1f} s job, {row['peak_rss_mb']:.0f} MB peak RSS", flush=True)
    report["quality_levels"] = rows


def contact_sheet(content: Image.Image, style: Image.Image, out: Path, height: int = 300) -> Path:
    """content | style | reference | each quality level, labelled, one row."""
    tiles = [("content", content), ("style", style)]
    if (out / "reference.png").exists():
        tiles.append(("classic reference", Image.open(out / "reference.png")))
    for name in QUALITY_LEVELS:
        if (out / f"level-{name}.png").exists():
            tiles.append((name, Image.open(out / f"level-{name}.png")))
    scaled = [(label, image.resize((round(image.width * height / image.height), height), Image.Resampling.LANCZOS))
              for label, image in tiles]
    sheet = Image.new("RGB", (sum(image.width for _, image in scaled) + 8 * (len(scaled) + 1), height + 36), "white")
    draw, x = ImageDraw.Draw(sheet), 8
    font = ImageFont.load_default()
    for label, image in scaled:
        sheet.paste(image, (x, 28))
        draw.text((x, 8), label, fill="black", font=font)
        x += image.width + 8
    path = out / "contact-sheet.png"
    sheet.save(path)
    return path


def print_table(report: dict) -> None:
    if "per_iteration" in report:
        print_speed(report)
    if "time_to_quality" in report:
        print_quality(report)
    if "quality_levels" in report:
        print_levels(report)
    if "batching" in report:
        print_batching(report)
    if "compile" in report:
        print_compile(report)


def print_speed(report: dict) -> None:
    machine = report["machine"]
    print(f"\nmatmul: {machine['matmul_gflops_fp32']:.0f} GFLOP/s fp32, {machine['matmul_gflops_bf16']:.0f} bf16 "
          f"(native bf16: {machine['native_bf16']}; engine precision: {machine['engine_precision']})")
    speed = report["per_iteration"]
    print(f"\nseconds per iteration at {speed['size'][0]}×{speed['size'][1]} "
          f"({speed['gflop_per_iteration']:.0f} GFLOP; FLOP floor {speed['flop_floor_s']:.2f} s)")
    for name, seconds in speed["seconds"].items():
        print(f"  {name:50s} {seconds:6.2f} s  {speed['ratio_to_reference'][name]:5.2f}× reference  "
              f"{seconds / speed['flop_floor_s']:5.2f}× floor")


def print_quality(report: dict) -> None:
    quality = report["time_to_quality"]
    print(f"\ntime to quality at {quality['size'][0]}×{quality['size'][1]}: reference "
          f"{quality['reference_iterations']} L-BFGS its in {quality['reference_seconds']:.1f} s, score "
          f"{quality['reference_score']:.4f} (content image scores {quality['content_image_score']:.4f})")
    if quality["ratio"] is not None:
        print(f"  engine default recipe reaches it in {quality['engine_seconds']:.1f} s = "
              f"{quality['ratio']:.2f}× the reference's time")
    else:
        print("  engine default recipe did not reach it within the ladder")
    for key, recipe in (("same_objective_ratio", f"engine recipe on the evaluator's objective {SAME_OBJECTIVE}"),
                        ("max_pooling_ratio", "engine default recipe with max pooling")):
        if quality.get(key) is not None:
            print(f"  {recipe} reaches it in {quality[key]:.2f}× the reference's time")


def print_levels(report: dict) -> None:
    print("\nquality levels (each in its own process):")
    for name, row in report["quality_levels"].items():
        print(f"  {name:9s} {row['size'][0]}×{row['size'][1]}, {row['iterations']} its: job {row['job_s']:.1f} s, "
              f"process {row['process_wall_s']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB")


def print_batching(report: dict) -> None:
    batching = report["batching"]
    print(f"\nbatching on {batching['device']}: {batching['jobs']} jobs at "
          f"{batching['size'][0]}×{batching['size'][1]}, {batching['iterations']} its: "
          f"one by one {batching['one_by_one_s']:.1f} s "
          f"({batching['jobs_per_minute_one_by_one']:.1f} jobs/min), one batch {batching['batched_s']:.1f} s "
          f"({batching['jobs_per_minute_batched']:.1f} jobs/min) = {batching['throughput_ratio']:.2f}× the throughput")


def print_compile(report: dict) -> None:
    compiled = report["compile"]
    even = compiled["break_even_iterations"]
    print(f"\ntorch.compile at {compiled['size'][0]}×{compiled['size'][1]}: eager {compiled['eager_s']:.2f} s/pass, "
          f"compiled {compiled['compiled_s']:.2f} s/pass, compiling {compiled['compile_s']:.1f} s per shape; "
          + (f"pays back after {even:.0f} passes at this shape" if even is not None else "never pays back"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and budgets (checks the script)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--only", choices=("speed", "quality", "levels", "batching", "compile"), action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(json.loads(args.job))))
        return 0
    plan = QUICK if args.quick else FULL
    out = args.out / ("quick" if args.quick else "full")
    out.mkdir(parents=True, exist_ok=True)
    from nst_engine.testing import write_random_vgg19

    weights = write_random_vgg19(out / "vgg19-random.pth", seed=0)
    content, style = content_scene(), Image.open(STYLE_FILE).convert("RGB")
    content_file = out / "content.png"
    content.save(content_file)
    report: dict = {"plan": plan.__dict__, "torch": torch.__version__}
    sections = set(args.only or ("speed", "quality", "levels", "batching", "compile"))
    name = "engine.json" if not args.only else f"engine-{'-'.join(sorted(sections))}.json"
    started = time.perf_counter()
    if "speed" in sections:
        print("per-iteration speed …", flush=True)
        speed_section(plan, weights, content, style, report)
        (out / name).write_text(json.dumps(report, indent=2))  # partial results survive a stop
    if "levels" in sections:
        print("quality levels …", flush=True)
        levels_section(plan, weights, content_file, out, report)
        (out / name).write_text(json.dumps(report, indent=2))
    if "batching" in sections:
        print("batching …", flush=True)
        batching_section(plan, weights, content, style, report)
        (out / name).write_text(json.dumps(report, indent=2))
    if "compile" in sections:
        print("torch.compile …", flush=True)
        compile_section(plan, weights, content, report)
        (out / name).write_text(json.dumps(report, indent=2))
    if "quality" in sections:
        print("time to quality …", flush=True)
        quality_section(plan, weights, content, style, out, report)
    report["benchmark_wall_s"] = time.perf_counter() - started
    report["load_average"] = os.getloadavg()
    (out / name).write_text(json.dumps(report, indent=2))
    sheet = contact_sheet(content, style, out)
    print_table(report)
    print(f"\nwrote {out / name} and {sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
