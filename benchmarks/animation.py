"""Temporal coherence of animations: flicker, warping error, later-frame iterations and time per frame.

    python benchmarks/animation.py           # the figures docs/engine.md quotes (5 min on 2 shared cores; 27 at load 12-15)
    python benchmarks/animation.py --quick   # smaller and fewer: checks the script in a couple of minutes

A generated GIF (``nst_engine.testing.ball_scene``: a ball crossing a still textured scene), read back through
``load_animation``, is stylised with a seeded random VGG19 twice with the same options: coherent (the default
``temporal_weight``) and frame by frame (``temporal_weight`` 0). Measured in the same run:

- flicker: the mean absolute change (0..255) between consecutive output frames over the pixels the ball never
  covers, coherent over one-by-one (the target is at most one half);
- warping error over the moving parts: the mean absolute difference between each output frame and the previous
  one warped by the input frames' flow, over the pixels the ball covers where the flow is trusted;
- motion shown: where the input changes between two frames (by over 30 of 255: the ball arriving or leaving),
  the output's change over the input's. Low flicker and warping error alone would also reward an output that
  does not move at all; this is near 0 for one;
- later frames' iterations: flicker and each later frame's objective (content + style + tv, without the temporal
  term) against the same frame stylised alone with the whole budget, for several shares of the first frame's
  iterations; and the temporal weight, for several weights;
- why fewer suffice: in the run whose later frames get the whole budget, a warm-started frame's objective after
  each of its iterations over that frame's one-by-one objective (drawn in ``animation-warm-start.png``), and the
  iteration at which it first gets there;
- time per frame: an animation's seconds per frame over one still job of the same size, run between them.

Writes ``benchmarks/out/animation.json``, ``benchmarks/out/animation-sheet.png`` (rows: input frames, one by
one, coherent) and ``benchmarks/out/animation-warm-start.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nst_engine.cost as cost  # noqa: E402
from nst_engine.animated_images import load_animation, save_animation  # noqa: E402
from nst_engine.animation import Animation  # noqa: E402
from nst_engine.flow import frame_motion, grey  # noqa: E402
from nst_engine.options import StylizeOptions  # noqa: E402
from nst_engine.testing import ball_scene, write_random_vgg19  # noqa: E402
from nst_engine.transfer import Engine  # noqa: E402

STYLE_FILE = REPO / "bot" / "assets" / "presets" / "mosaic.png"
OUT = REPO / "benchmarks" / "out"


@dataclasses.dataclass(frozen=True)
class Plan:
    size: tuple[int, int]
    frames: int
    iterations: int
    min_scale: int
    shares: tuple[float, ...]
    weights: tuple[float, ...]


FULL = Plan((80, 50), 8, 20, 40, (0.05, 0.1, 0.5, 1.0), (10.0, 1000.0))
QUICK = Plan((64, 40), 5, 12, 32, (1.0,), (1000.0,))


def flicker(animation: Animation, still: np.ndarray) -> float:
    frames = [np.asarray(frame, np.float32) for frame in animation.frames]
    return float(np.mean([np.abs(b - a)[still].mean() for a, b in zip(frames, frames[1:])]))


def warping_error(result: Animation, source: Animation, moving: np.ndarray) -> float:
    """Mean |out_t − warp(out_t−1)| over the moving pixels whose flow (between the input frames) is trusted."""
    errors = []
    for k in range(1, source.frame_count):
        motion = frame_motion(grey(source.frames[k - 1]), grey(source.frames[k]))
        warped = motion.warp(np.asarray(result.frames[k - 1], np.float32))
        where = moving & (motion.mask > 0)
        if where.any():
            errors.append(float(np.abs(np.asarray(result.frames[k], np.float32) - warped)[where].mean()))
    return float(np.mean(errors)) if errors else 0.0


def motion_shown(result: Animation, source: Animation) -> float:
    """Mean |out_t − out_t−1| over |in_t − in_t−1| where the input changed by over 30 (of 255) between them."""
    shown, changed = [], []
    for k in range(1, source.frame_count):
        change = np.abs(np.asarray(source.frames[k], np.float32) - np.asarray(source.frames[k - 1], np.float32))
        where = change.max(-1) > 30
        out = np.abs(np.asarray(result.frames[k], np.float32) - np.asarray(result.frames[k - 1], np.float32))
        shown.append(out[where].mean())
        changed.append(change[where].mean())
    return float(np.mean(shown) / np.mean(changed))


def objectives(result) -> list[float]:
    """Each frame's objective without the temporal term: what stylising that frame alone minimises."""
    return [losses["total"] - losses.get("temporal", 0.0) for losses in result.losses]


def run(engine: Engine, animation: Animation, style: Image.Image, options: StylizeOptions, share: float,
        curves: dict[int, list[float]] | None = None):
    """The animation with later frames at ``share`` of the iterations (the sweep goes below the floor); with
    ``curves``, each frame's objective after every iteration is recorded there, by frame number."""
    cost.LATER_FRAME_SHARE, cost.MIN_LATER_ITERATIONS = share, 1

    def record(progress) -> None:
        losses = progress.losses
        curves.setdefault(progress.frame, []).append(losses["total"] - losses.get("temporal", 0.0))

    return engine.stylize_animation(animation, [style], options, on_progress=record if curves is not None else None)


def warm_start(curves: dict[int, list[float]], alone) -> dict:
    """The later frames' mean objective after k iterations over their one-by-one objectives, and the first k at
    which a warm-started frame is as good as a frame stylised alone with the whole budget."""
    targets = objectives(alone)
    mean = np.mean([np.array(curves[frame]) / targets[frame - 1] for frame in sorted(curves) if frame > 1], axis=0)
    reached = next((k for k, ratio in enumerate(mean, start=1) if ratio <= 1.0), None)
    return {"objective_vs_one_by_one": [round(float(ratio), 4) for ratio in mean],
            "iterations_to_one_by_one": reached}


def curve_chart(ratios: list[float], chosen: int, path: Path) -> None:
    """The warm-start curve as a small line chart (PIL only): iterations across, objective ratio up, the
    1.0 line (a frame stylised alone) and the later-frame iterations the engine uses marked."""
    width, height, margin = 480, 240, 40
    top, bottom = max(ratios + [1.0]) * 1.02, min(ratios + [1.0]) * 0.98
    x = lambda k: margin + (k - 1) * (width - 2 * margin) / max(1, len(ratios) - 1)  # noqa: E731
    y = lambda r: margin + (top - r) * (height - 2 * margin) / (top - bottom)  # noqa: E731
    chart = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(chart)
    draw.line([(margin, y(1.0)), (width - margin, y(1.0))], fill=(160, 160, 160))
    draw.text((width - margin - 120, y(1.0) - 14), "one by one (all of it)", fill=(110, 110, 110))
    draw.line([(x(chosen), margin), (x(chosen), height - margin)], fill=(200, 120, 40))
    draw.text((x(chosen) + 3, margin), f"engine: {chosen}", fill=(200, 120, 40))
    draw.line([(x(k), y(r)) for k, r in enumerate(ratios, start=1)], fill=(30, 80, 200), width=2)
    draw.text((margin, height - margin + 8), f"iterations of a warm-started frame (1 to {len(ratios)})", fill="black")
    draw.text((4, 4), f"objective / one-by-one objective ({bottom:.2f} to {top:.2f})", fill="black")
    chart.save(path)


def figures(result, alone, animation: Animation, still: np.ndarray) -> dict:
    later = np.array(objectives(result)[1:]) / np.array(objectives(alone)[1:])
    frames = animation.frame_count
    later_iterations = (result.iterations - result.iterations // frames if result is alone else
                        result.iterations - alone.iterations // frames) / (frames - 1)
    return {"iterations": result.iterations, "later_frame_iterations": later_iterations,
            "seconds": round(result.elapsed, 2),
            "flicker": round(flicker(result.animation, still), 3),
            "warping_error": round(warping_error(result.animation, animation, ~still), 3),
            "motion_shown": round(motion_shown(result.animation, animation), 3),
            "later_objective_vs_alone": round(float(later.mean()), 4)}


def contact_sheet(rows: list[tuple[str, Animation]], path: Path) -> None:
    width, height = rows[0][1].size
    label = 90
    sheet = Image.new("RGB", (label + width * rows[0][1].frame_count, height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (name, animation) in enumerate(rows):
        draw.text((4, row * height + height // 2 - 6), name, fill="black")
        for column, frame in enumerate(animation.frames):
            sheet.paste(frame, (label + column * width, row * height))
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller and fewer runs: checks the script")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    default_share, default_floor = cost.LATER_FRAME_SHARE, cost.MIN_LATER_ITERATIONS
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(str(write_random_vgg19(Path(folder) / "vgg19.pth")))
        scene, still = ball_scene(plan.size, plan.frames)
        animation = load_animation(save_animation(scene, Path(folder) / "ball.gif"))
    style = Image.open(STYLE_FILE).convert("RGB")
    options = StylizeOptions(size=max(plan.size), iterations=plan.iterations, min_scale=plan.min_scale)

    def still_job() -> float:
        started = time.perf_counter()
        engine.stylize(animation.frames[0], [style], options)
        return time.perf_counter() - started

    still_times = [still_job()]  # also warms the engine up
    alone = run(engine, animation, style, dataclasses.replace(options, temporal_weight=0.0), default_share)
    still_times.append(still_job())
    coherent = run(engine, animation, style, options, default_share)
    still_times.append(still_job())
    still_seconds = statistics.median(still_times)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores "
                   "(shared with other work while it ran)",
        "plan": dataclasses.asdict(plan), "options": {"size": options.size, "iterations": options.iterations,
                                                     "min_scale": options.min_scale,
                                                     "temporal_weight": options.temporal_weight},
        "later_frame_share": default_share, "later_frame_iterations": cost.later_frame_iterations(options),
        "one_by_one": figures(alone, alone, animation, still), "coherent": figures(coherent, alone, animation, still),
        "still_job_seconds": round(still_seconds, 3),
    }
    report["flicker_ratio"] = round(report["coherent"]["flicker"] / report["one_by_one"]["flicker"], 3)
    report["warping_error_ratio"] = round(report["coherent"]["warping_error"] /
                                          max(report["one_by_one"]["warping_error"], 1e-9), 3)
    report["seconds_per_frame_vs_still"] = {
        name: round(result.elapsed / plan.frames / still_seconds, 3) for name, result in
        (("coherent", coherent), ("one_by_one", alone))}
    # The sweeps: the default's figures are the coherent run's; only the other values run again.
    curves: dict[int, list[float]] = {}
    report["later_share_sweep"] = {str(default_share): report["coherent"], **{
        str(share): figures(run(engine, animation, style, options, share, curves if share == 1.0 else None),
                            alone, animation, still)
        for share in plan.shares}}
    report["warm_start"] = warm_start(curves, alone)
    report["temporal_weight_sweep"] = {str(options.temporal_weight): report["coherent"], **{
        str(weight): figures(run(engine, animation, style, dataclasses.replace(options, temporal_weight=weight),
                                 default_share), alone, animation, still)
        for weight in plan.weights}}
    cost.LATER_FRAME_SHARE, cost.MIN_LATER_ITERATIONS = default_share, default_floor
    OUT.mkdir(parents=True, exist_ok=True)
    name = "animation-quick" if args.quick else "animation"
    (OUT / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    contact_sheet([("input", animation), ("one by one", alone.animation), ("coherent", coherent.animation)],
                  OUT / f"{name}-sheet.png")
    curve_chart(report["warm_start"]["objective_vs_one_by_one"], report["later_frame_iterations"],
                OUT / f"{name}-warm-start.png")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
