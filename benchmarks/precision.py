"""bf16 against fp32 on the classic Gatys objective: how much quality bf16 costs, and which part of it.

    nice -n 10 python benchmarks/precision.py                  # the fast (256 px) and standard (512 px) levels
    python benchmarks/precision.py --level fast --variant fp32 --variant bf16
    python benchmarks/precision.py --quick                     # 96 px, a few iterations: checks the script

Each variant runs the engine's recipe for a quality level (its size and iterations, seed 0) on the landscape and
the mosaic of benchmarks/engine.py, and the result is scored by the classic objective (content + 10 × style,
each term divided by its target's squared norm, benchmarks/reference.py) on the same random VGG19 in fp32: lower
is better, and ``x_fp32`` is the variant's score over fp32's. The variants:

- ``fp32``: ``--precision fp32``;
- ``bf16``: ``--precision bf16`` as the engine runs it;
- ``bf16, fp32 until L``: bf16 autocast, but the network's layers before ``L`` in fp32
  (``nst_engine.network.FP32_LAYERS``), to find where rounding costs the quality.

The variants of one level run interleaved, once per seed (``--seeds``): L-BFGS amplifies rounding, so one run
of each says little (docs/quality.md); compare the mean of the per-seed ratios. Writes
``benchmarks/out/precision.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.engine import STYLE_FILE, content_scene  # noqa: E402
from benchmarks.reference import CONTENT_INDEX, GatysObjective, features, image_tensor, load_classic_vgg  # noqa: E402
from nst_engine import network  # noqa: E402
from nst_engine.images import scaled_size  # noqa: E402
from nst_engine.layers import LAYER_INDEX  # noqa: E402
from nst_engine.options import QUALITY_LEVELS, StylizeOptions  # noqa: E402
from nst_engine.testing import write_random_vgg19  # noqa: E402
from nst_engine.transfer import Engine, cpu_has_native_bf16  # noqa: E402

STYLE_FACTOR = 10.0  # the objective's style weight over its content weight
# name → (precision, FP32_LAYERS)
VARIANTS = {
    "fp32": ("fp32", 0),
    "bf16": ("bf16", 0),
    "bf16, fp32 until relu1_1": ("bf16", LAYER_INDEX["relu1_1"]),
    "bf16, fp32 until pool1": ("bf16", LAYER_INDEX["pool1"]),
}


def score_parts(objective: GatysObjective, image: Image.Image) -> dict[str, float]:
    """The classic objective's total and its content and style terms (before their weights)."""
    width, height = objective.content.shape[-1], objective.content.shape[-2]
    total = objective.score(image)
    with torch.no_grad():
        current = features(objective.network, image_tensor(image.resize((width, height), Image.Resampling.LANCZOS)))
        content = float((current[CONTENT_INDEX] - objective.content_target).pow(2).sum() / objective.content_norm)
    return {"score": total, "content": content, "style": (total - content) / STYLE_FACTOR}


def run_variant(engine: Engine, name: str, content: Image.Image, style: Image.Image, size: int,
                iterations: int, seed: int) -> tuple[Image.Image, float]:
    precision, fp32_layers = VARIANTS[name]
    network.FP32_LAYERS = fp32_layers
    try:
        options = StylizeOptions(size=size, iterations=iterations, precision=precision,
                                 style_weight=STYLE_FACTOR, content_weight=1.0, seed=seed)
        result = engine.stylize(content, [style], options)
    finally:
        network.FP32_LAYERS = 0
    return result.image, result.elapsed


def level_rows(engine: Engine, weights: Path, level: str, size: int, iterations: int, variants: list[str],
               seeds: int) -> list[dict]:
    """Each variant once per seed (0: the content as the start; others jitter it, a different path through the
    same objective), interleaved; ``x_fp32`` per seed is against fp32 with that seed."""
    content, style = content_scene(), Image.open(STYLE_FILE).convert("RGB")
    width, height = scaled_size(*content.size, size)
    objective = GatysObjective(load_classic_vgg(weights),
                               image_tensor(content.resize((width, height), Image.Resampling.LANCZOS)),
                               image_tensor(style.resize((size, size), Image.Resampling.LANCZOS)),
                               1.0, STYLE_FACTOR)
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in range(seeds):
        for name in variants:
            image, seconds = run_variant(engine, name, content, style, size, iterations, seed)
            samples[name].append({**score_parts(objective, image), "seconds": seconds, "seed": seed})
            print(f"  {level} {width}x{height} seed {seed} {name:28s} score {samples[name][-1]['score']:.4f} "
                  f"(content {samples[name][-1]['content']:.4f}, style {samples[name][-1]['style']:.4f}) "
                  f"in {seconds:.1f} s", flush=True)
    base = samples.get("fp32", samples[variants[0]])
    rows = []
    for name, runs in samples.items():
        ratios = [run["score"] / fp32["score"] for run, fp32 in zip(runs, base)]
        rows.append({"level": level, "size": [width, height], "iterations": iterations, "variant": name,
                     "score_median": statistics.median(run["score"] for run in runs),
                     "x_fp32_mean": statistics.mean(ratios), "x_fp32_per_seed": ratios, "runs": runs})
        print(f"{level} {width}x{height} {name:28s} score median {rows[-1]['score_median']:.4f}  x fp32: mean "
              f"{statistics.mean(ratios):.3f} (per seed {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="96 px, 6 iterations: checks the script")
    parser.add_argument("--level", action="append", choices=sorted(QUALITY_LEVELS),
                        help="quality levels to run (repeatable; default fast and standard)")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS),
                        help="variants to run (repeatable; default all)")
    parser.add_argument("--size", type=int, help="a long side of your own instead of the levels' (with --iterations)")
    parser.add_argument("--iterations", type=int, default=40, help="iterations with --size")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0 … N-1 per variant, interleaved")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "precision.json")
    args = parser.parse_args()
    variants = args.variant or list(VARIANTS)
    report: dict = {"command": sys.argv[1:], "native_bf16": cpu_has_native_bf16(),
                    "threads": torch.get_num_threads(), "load_before": os.getloadavg(), "levels": []}
    if not report["native_bf16"]:
        print("note: bf16 is emulated on this CPU (no avx512_bf16 / amx_bf16): slow, but the scores still hold")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        weights = write_random_vgg19(Path(scratch) / "vgg19-random.pth")
        engine = Engine(str(weights))
        levels = [("quick", 96, 6)] if args.quick else [("custom", args.size, args.iterations)] if args.size else [
            (name, QUALITY_LEVELS[name].size, QUALITY_LEVELS[name].iterations)
            for name in (args.level or ["fast", "standard"])]
        for level, size, iterations in levels:
            report["levels"] += level_rows(engine, weights, level, size, iterations, variants, args.seeds)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))
    report.update(load_after=os.getloadavg(), wall_s=time.perf_counter() - started)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"load average before {report['load_before']}, after {report['load_after']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
