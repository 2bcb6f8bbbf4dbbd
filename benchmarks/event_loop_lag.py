"""Event-loop lag of the bot process while a stylize job runs, against the same bot idle (the baseline).

Starts the real ``nst-bot run`` against the loopback Discord stand-in with a seeded random VGG19, then:
1. idle: reads the lag samples the bot's heartbeat records (how late a 50 ms sleep wakes, every 50 ms) and
   times autocomplete round trips (INTERACTION_CREATE sent → callback received);
2. busy: the same while one /stylize job runs in the engine process.
A control process running the same 50 ms sleep probe with nothing else to do is sampled over both phases: what
it sees is the machine's own scheduling noise (other processes on shared cores), not the bot's.
Prints p50 / p99 / max of both and the busy/idle ratio, and writes them to benchmarks/out/event_loop_lag.json.

    python benchmarks/event_loop_lag.py [--size 256] [--iterations 40] [--idle 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.ops.health import LAG_PROBE, percentile  # noqa: E402
from tests.face.discord_standin import StandinThread  # noqa: E402
from tests.face.harness import BotProcess, png_bytes, write_config  # noqa: E402
from tests.conftest import make_content, make_style  # noqa: E402


class HeartbeatLag:
    """The event-loop lag samples of each heartbeat the bot writes, each heartbeat counted once."""

    def __init__(self, heartbeat: Path) -> None:
        self.heartbeat = heartbeat
        self.seen: set[float] = set()

    def lag(self) -> list[float]:
        try:
            beat = json.loads(self.heartbeat.read_text())
        except (OSError, ValueError):
            return []
        if beat["time"] in self.seen:
            return []
        self.seen.add(beat["time"])
        return beat["lag_ms"]["samples"]


class Sampler(HeartbeatLag):
    """Heartbeat lag samples, and autocomplete round-trip times."""

    def __init__(self, heartbeat: Path, standin: StandinThread) -> None:
        super().__init__(heartbeat)
        self.standin = standin

    def round_trip(self) -> float:
        sent = time.perf_counter()
        token = self.standin.autocomplete("stylize", "preset", "wa")
        self.standin.wait_for(lambda: self.standin.records("callback", token), 10, "an autocomplete answer", 0.002)
        return (time.perf_counter() - sent) * 1000

    def collect(self, until: callable) -> tuple[list[float], list[float]]:
        self.lag()  # skip the window that began before this phase
        lags, trips = [], []
        while not until():
            trips.append(self.round_trip())
            lags.extend(self.lag())
            time.sleep(0.25)
        time.sleep(2.2)  # the heartbeat that covers the phase's last moments
        lags.extend(self.lag())
        return lags, trips


async def probe(path: Path) -> None:
    """The control: the bot's lag probe in a process that does nothing else; one "time lag_ms" line per sample."""
    loop = asyncio.get_running_loop()
    with path.open("a") as out:
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE)
            out.write(f"{time.time()} {max(0.0, (loop.time() - before - LAG_PROBE) * 1000):.3f}\n")
            out.flush()


def control_samples(path: Path, start: float, end: float) -> list[float]:
    rows = (line.split() for line in path.read_text().splitlines())
    return [float(lag) for at, lag in rows if start <= float(at) <= end]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values, default=0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="output long side of the job (px)")
    parser.add_argument("--iterations", type=int, default=40, help="iterations of the job")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle baseline")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # internal: run as the control process
    args = parser.parse_args()
    if args.probe:
        return asyncio.run(probe(args.probe))

    from nst_engine.testing import write_random_vgg19

    with tempfile.TemporaryDirectory() as tmp, StandinThread() as standin:
        work = Path(tmp)
        weights = write_random_vgg19(work / "vgg19.pth", seed=0)
        config = write_config(work, standin, weights, limits={"max_size": args.size, "max_iterations": args.iterations})
        config.write_text(config.read_text() + f"\n[quality.bench]\nsize = {args.size}\niterations = {args.iterations}\n")
        bot = BotProcess(config, work / "bot.log", env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
        bot.start().wait_ready()
        sampler = Sampler(work / "data" / "heartbeat.json", standin)
        control_file = work / "control.txt"
        control = subprocess.Popen([sys.executable, __file__, "--probe", str(control_file)])
        try:
            idle_began, end = time.time(), time.monotonic() + args.idle
            idle_lag, idle_trips = sampler.collect(lambda: time.monotonic() > end)
            busy_began = time.time()

            content = standin.attachment("c.png", png_bytes(make_content(384, 256)))
            style = standin.attachment("s.png", png_bytes(make_style(256)))
            token = standin.command("stylize", {"content": content, "style": style, "quality": "bench"})
            started = time.monotonic()

            def finished() -> bool:
                return any("here is your image" in m["content"] for m in standin.followups(token))
            busy_lag, busy_trips = sampler.collect(finished)
            job_seconds = time.monotonic() - started
            idle_control = control_samples(control_file, idle_began, busy_began)
            busy_control = control_samples(control_file, busy_began, time.time())
        finally:
            control.terminate()
            bot.stop()

    results = {"job": {"size": args.size, "iterations": args.iterations, "seconds": round(job_seconds, 1)},
               "idle": {"loop_lag_ms": summary(idle_lag), "autocomplete_rtt_ms": summary(idle_trips),
                        "control_lag_ms": summary(idle_control)},
               "busy": {"loop_lag_ms": summary(busy_lag), "autocomplete_rtt_ms": summary(busy_trips),
                        "control_lag_ms": summary(busy_control)}}
    for name in ("loop_lag_ms", "control_lag_ms", "autocomplete_rtt_ms"):
        idle, busy = results["idle"][name], results["busy"][name]
        results[f"{name}_p99_ratio_busy_over_idle"] = round(busy["p99"] / idle["p99"], 2) if idle["p99"] else None
        print(f"{name:20} idle p50 {idle['p50']:7.2f}  p99 {idle['p99']:7.2f}  max {idle['max']:7.2f}  (n={idle['n']})")
        print(f"{'':20} busy p50 {busy['p50']:7.2f}  p99 {busy['p99']:7.2f}  max {busy['max']:7.2f}  (n={busy['n']})"
              f"  p99 ratio busy/idle {results[f'{name}_p99_ratio_busy_over_idle']}")
    for phase in ("idle", "busy"):
        bot_p99, control_p99 = results[phase]["loop_lag_ms"]["p99"], results[phase]["control_lag_ms"]["p99"]
        results[phase]["bot_over_control_p99"] = round(bot_p99 / control_p99, 2) if control_p99 else None
        print(f"{phase}: bot loop-lag p99 / control p99 = {results[phase]['bot_over_control_p99']}")
    print(f"job: {args.size} px, {args.iterations} iterations, {job_seconds:.1f} s end to end")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "event_loop_lag.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
