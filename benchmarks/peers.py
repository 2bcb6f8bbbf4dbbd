"""Seconds per iteration of nst-bot beside two peers, neural-style-pt and crowsonkb's style-transfer-pytorch.

    python benchmarks/peers.py --neural-style-pt PATH --crowsonkb PATH            # 512 px, 2 rounds
    python benchmarks/peers.py --quick --neural-style-pt PATH --crowsonkb PATH    # tiny size: checks the script

Each PATH is a checkout the user made (``git clone https://github.com/ProGamerGov/neural-style-pt``, ``git clone
https://github.com/crowsonkb/style-transfer-pytorch``); their code is imported from there and run as it is, never
copied here. A peer left out, or a path without its code, is skipped with a note. No network is needed: every side
loads the same seeded random VGG19 (``nst_engine.testing.write_random_vgg19``, torchvision's format with the
classifier, which neural-style-pt's ``CaffeLoader.py`` loads as it is, key for key) and crowsonkb's
``models.vgg19(weights=IMAGENET1K_V1)`` finds it in a private torch hub cache (``TORCH_HOME``) instead of
downloading.

One iteration is the side's own optimiser step at one scale of the drawn 640×480 landscape scaled to ``--size``
(512×384), with the ``mosaic`` preset as style, resized as the side resizes it, default layers and weights:
- nst-bot, ``precision="auto"`` and ``precision="fp32"``: ``Engine.stylize`` at a single scale (L-BFGS, one pass
  per iteration), timed from its progress callbacks;
- neural-style-pt: its ``main()`` on the CPU (``-gpu c``; L-BFGS, history 100, max pooling, fp32), timed at each
  call of its closure (``torch.optim.LBFGS`` is wrapped for the timing, nothing else);
- crowsonkb: ``StyleTransfer.stylize`` with ``min_scale = end_scale = size`` (Adam, Wasserstein-2 style loss,
  fp32), timed from its callback.

Rounds are interleaved (A B C D, A B C D …) and each measurement is a fresh process, so none inherits another's
threads or caches; each gives the median of ``--iterations`` iterations after one warm-up iteration. Peers get
the environment this script was started with; nst-bot's processes set its own OpenMP default
(``GOMP_SPINCOUNT=3000`` unless ``OMP_WAIT_POLICY`` or it is set, nst_engine/__init__.py), as the bot does: start
the script with ``GOMP_SPINCOUNT=3000``, ``OMP_WAIT_POLICY=PASSIVE`` or ``ACTIVE`` to give all four the same.
Records the CPU, threads, load average before and after (and at each measurement), matmul GFLOP/s and the FLOP
floor (forward + input gradient through VGG19 to relu5_1, at the best native precision and at fp32).
Writes ``benchmarks/out/peers.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
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
# The peers' processes get the environment the benchmark was started with, not nst_engine's default; the
# parent's heavy imports (torch, nst_engine) therefore wait in main() and the children import only their side.
STARTED_ENV = dict(os.environ)
WARM_UP = 1  # iterations left out of each process's median
WEIGHTS_NAME = "vgg19-random.pth"  # neural-style-pt picks its architecture from the file's name ("vgg", "19")
NST_BOT = {"nst-bot auto": "auto", "nst-bot fp32": "fp32"}


def stamps_to_seconds(stamps: list[float]) -> list[float]:
    """Seconds of each iteration from the times they ended, the warm-up left out."""
    return [b - a for a, b in zip(stamps, stamps[1:])][WARM_UP:]


def child_nst_bot(job: dict) -> dict:
    import nst_engine  # noqa: F401  (before torch: its OpenMP default, as in the bot)
    import torch
    from PIL import Image

    from nst_engine.options import StylizeOptions
    from nst_engine.transfer import Engine, resolve_precision

    stamps: list[float] = []
    options = StylizeOptions(size=job["size"], min_scale=job["size"], iterations=job["iterations"] + WARM_UP + 1,
                             precision=job["precision"])
    result = Engine(job["weights"]).stylize(Image.open(job["content"]), [Image.open(job["style"]).convert("RGB")],
                                            options, on_progress=lambda _: stamps.append(time.perf_counter()))
    precision = resolve_precision(job["precision"], torch.device("cpu"))
    return {"stamps": stamps, "picture": list(result.image.size),
            "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(precision, "fp32")}


def child_neural_style_pt(job: dict) -> dict:
    import torch

    stamps: list[float] = []

    class TimedLBFGS(torch.optim.LBFGS):
        """torch's L-BFGS, noting when each evaluation of neural-style-pt's closure ends."""

        def step(self, closure):  # type: ignore[override]
            def timed():
                loss = closure()
                stamps.append(time.perf_counter())
                return loss
            return super().step(timed)

    torch.optim.LBFGS = TimedLBFGS  # neural_style.py looks it up as optim.LBFGS when it builds its optimiser
    output = Path(job["scratch"]) / "neural-style-pt.png"
    # It parses sys.argv when imported; its L-BFGS evaluates the closure num_iterations times.
    sys.argv = ["neural_style.py", "-gpu", "c", "-content_image", job["content"], "-style_image", job["style"],
                "-image_size", str(job["size"]), "-model_file", WEIGHTS_NAME, "-output_image", str(output),
                "-num_iterations", str(job["iterations"] + WARM_UP + 1), "-print_iter", "0", "-save_iter", "0"]
    sys.path.insert(0, job["peer"])
    import neural_style

    neural_style.main()
    from PIL import Image

    return {"stamps": stamps, "picture": list(Image.open(output).size), "precision": "fp32"}


def child_crowsonkb(job: dict) -> dict:
    sys.path.insert(0, job["peer"])
    import torch
    from PIL import Image
    from style_transfer import StyleTransfer

    torch.manual_seed(0)  # as its cli.py does
    stamps: list[float] = []
    transfer = StyleTransfer(devices=["cpu"])
    transfer.stylize(Image.open(job["content"]).convert("RGB"), [Image.open(job["style"]).convert("RGB")],
                     min_scale=job["size"], end_scale=job["size"], initial_iterations=job["iterations"] + WARM_UP + 1,
                     callback=lambda _: stamps.append(time.perf_counter()))
    return {"stamps": stamps, "picture": list(transfer.get_image().size), "precision": "fp32"}


def run_child(kind: str, job: dict) -> None:
    """One measurement in this (fresh) process; the sides' own chatter goes to stderr, the result to stdout."""
    with contextlib.redirect_stdout(sys.stderr):
        measured = {"nst-bot": child_nst_bot, "neural-style-pt": child_neural_style_pt,
                    "crowsonkb": child_crowsonkb}[kind](job)
    import torch

    seconds = stamps_to_seconds(measured.pop("stamps"))
    print(json.dumps({**measured, "seconds": statistics.median(seconds), "iterations_s": seconds,
                      "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}))


def peer_jobs(args: argparse.Namespace, base: dict, torch_home: Path) -> tuple[dict, list[str]]:
    """The variants to measure: (child kind, job, extra environment) by name, and a note per peer skipped."""
    variants = {name: ("nst-bot", {**base, "precision": precision}, {}) for name, precision in NST_BOT.items()}
    notes = []
    for name, path, marker, env in (
            ("neural-style-pt", args.neural_style_pt, "neural_style.py", {}),
            ("crowsonkb", args.crowsonkb, "style_transfer/style_transfer.py", {"TORCH_HOME": str(torch_home)})):
        if path is None or not (path / marker).is_file():
            notes.append(f"{name}: skipped ({'no path given' if path is None else f'no {marker} under {path}'})")
            continue
        variants[name] = (name, {**base, "peer": str(path.resolve()), "commit": git_commit(path)}, env)
    return variants, notes


def git_commit(path: Path) -> str | None:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def measure(kind: str, job: dict, env: dict, scratch: Path) -> dict:
    load = os.getloadavg()
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(job)],
                         capture_output=True, text=True, cwd=scratch, env={**STARTED_ENV, **env})
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-4000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load_at_start": load}


def summarise(samples: dict[str, list[dict]], floors: dict[str, float]) -> list[dict]:
    """One row per variant: median seconds, × nst-bot auto (median of the per-round ratios), × each floor."""
    base = samples.get("nst-bot auto")
    rows = []
    for name, runs in samples.items():
        seconds = statistics.median(run["seconds"] for run in runs)
        ratios = [run["seconds"] / ref["seconds"] for run, ref in zip(runs, base)] if base else []
        rows.append({"variant": name, "seconds": seconds, "per_round_s": [run["seconds"] for run in runs],
                     "x_nst_bot_auto": statistics.median(ratios) if ratios else None,
                     "x_nst_bot_auto_per_round": ratios, "precision": runs[0]["precision"],
                     "picture": runs[0]["picture"], "threads": runs[0]["threads"],
                     "omp_wait_policy": runs[0]["omp_wait_policy"], "gomp_spincount": runs[0]["gomp_spincount"],
                     **{f"x_floor_{key}": seconds / floor for key, floor in floors.items()}})
    return rows


def print_table(rows: list[dict], floors: dict[str, float], best: str) -> None:
    print(f"\n{'':18s} {'s/iteration':>11s} {'× nst-bot auto':>14s} {f'× floor ({best})':>16s} {'× fp32 floor':>12s}"
          f"  precision, picture, OMP_WAIT_POLICY, GOMP_SPINCOUNT")
    for row in rows:
        auto = f"{row['x_nst_bot_auto']:.2f}" if row["x_nst_bot_auto"] is not None else "-"
        print(f"{row['variant']:18s} {row['seconds']:11.3f} {auto:>14s} {row[f'x_floor_{best}']:16.2f} "
              f"{row['x_floor_fp32']:12.2f}  {row['precision']}, {row['picture'][0]}x{row['picture'][1]}, "
              f"{row['omp_wait_policy']}, {row['gomp_spincount']}")
    print(f"{'FLOP floor':18s} " + ", ".join(f"{key} {floor:.3f} s" for key, floor in floors.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neural-style-pt", type=Path, help="a checkout of ProGamerGov/neural-style-pt")
    parser.add_argument("--crowsonkb", type=Path, help="a checkout of crowsonkb/style-transfer-pytorch")
    parser.add_argument("--size", type=int, default=512, help="long side of the picture (640×480 scaled)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (one process per side each)")
    parser.add_argument("--iterations", type=int, default=4, help="timed iterations per process, after warm-up")
    parser.add_argument("--quick", action="store_true", help="96 px, one round, two iterations: checks the script")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "peers.json")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child[0], json.loads(args.child[1]))
        return 0
    if args.quick:
        args.size, args.rounds, args.iterations = 96, 1, 2

    import torch

    from benchmarks.engine import STYLE_FILE, content_scene, vgg_flops
    from benchmarks.speed_floor import machine
    from nst_engine.images import scaled_size
    from nst_engine.testing import write_random_vgg19

    content = content_scene()
    width, height = scaled_size(*content.size, args.size)
    report: dict = {"command": sys.argv[1:], "torch": torch.__version__, "size": [width, height],
                    "iterations_per_process": args.iterations, "warm_up": WARM_UP}
    best = machine(report)
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    report["machine"]["model"] = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                                       if line.startswith("model name")), None)
    flops = 2 * vgg_flops(width, height)  # forward + input gradient, which costs the same as the forward
    floors = {report["machine"]["floor_precision"]: flops / (best * 1e9),
              "fp32": flops / (max(report["machine"]["matmul_gflops_fp32"]) * 1e9)}
    report["flop_floor_s"], report["gflop_per_iteration"] = floors, flops / 1e9
    with tempfile.TemporaryDirectory(prefix="nst-peers-") as directory:
        scratch = Path(directory)
        write_random_vgg19(scratch / WEIGHTS_NAME, full_model=True)  # the peers load it strictly, classifier too
        from torchvision.models import VGG19_Weights

        checkpoints = scratch / "torch-home" / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        (checkpoints / VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]).symlink_to(scratch / WEIGHTS_NAME)
        content.save(scratch / "content.png")
        base = {"size": args.size, "iterations": args.iterations, "weights": str(scratch / WEIGHTS_NAME),
                "content": str(scratch / "content.png"), "style": str(STYLE_FILE), "scratch": str(scratch)}
        variants, notes = peer_jobs(args, base, scratch / "torch-home")
        for note in notes:
            print(note, flush=True)
        report["skipped"] = notes
        report["peers"] = {name: {"path": job["peer"], "commit": job["commit"]}
                           for name, (_, job, _) in variants.items() if "peer" in job}
        samples: dict[str, list[dict]] = {name: [] for name in variants}
        for round_number in range(args.rounds):
            for name, (kind, job, env) in variants.items():
                samples[name].append(measure(kind, job, env, scratch))
                print(f"round {round_number + 1}, {name}: {samples[name][-1]['seconds']:.3f} s/iteration "
                      f"(load {samples[name][-1]['load_at_start'][0]:.2f})", flush=True)
                report["samples"] = samples
                save(report, args.out)  # a long run on a loaded machine keeps what it measured
    report["rows"] = summarise(samples, floors)
    report["machine"]["load_after"] = os.getloadavg()
    save(report, args.out)
    print_table(report["rows"], floors, report["machine"]["floor_precision"])
    print(f"{report['machine']['model']}, flags {' '.join(report['machine']['flags'])}, "
          f"{report['machine']['threads']} threads; load average before {report['machine']['load_before']}, "
          f"after {report['machine']['load_after']}; wrote {args.out}")
    return 0


def save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
