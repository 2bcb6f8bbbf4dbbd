"""The bot's own capacity: one real ``nst-bot run`` process against the loopback Discord stand-in, with the
test-only instant engine (``[queue] backend = "instant"``, bot/work/instant.py), so only the bot is measured.

1. bursts: N ``/stylize`` requests from N different members arriving together; requests acknowledged per second
   and p50 / p99 of the time to the first answer (the deferral Discord needs within 3 s) and to the reply that
   says "Queued" (or "busy"), and how many were answered politely "busy";
2. the status loop with N active jobs (one runs, the rest wait; a job ends every ``--hold`` seconds, so every
   queued job's position changes): status edits per second, the busiest message's edits per 5 s, 429s, the
   bot's CPU share, its memory per queued job and with its decoder processes;
3. the job store with 10k and 100k finished jobs (in this process): purge, disk housekeeping, the user cooldown
   look-up and a job look-up.
Event-loop lag p99 comes from the bot's heartbeat throughout. Writes benchmarks/out/capacity.json and
benchmarks/out/capacity.png (drawn with Pillow); the load average is recorded (the machine may be shared).

    python benchmarks/capacity.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.capacity_plot import draw  # noqa: E402
from benchmarks.event_loop_lag import HeartbeatLag  # noqa: E402
from bot.ops.health import percentile  # noqa: E402
from tests.conftest import make_content, make_style, png_bytes  # noqa: E402
from tests.face.discord_standin import ATTACHMENT_OPTION, APPLICATION_ID, StandinThread, user  # noqa: E402
from tests.face.harness import BotProcess, write_config  # noqa: E402

OUT = REPO / "benchmarks" / "out"
MEMBER_BASE = 710000000000000000
WEBHOOK_ORIGINAL = "/messages/@original"


def stylize_data(content: dict, style: dict) -> dict:
    """The INTERACTION_CREATE data of ``/stylize content style`` (as the stand-in's ``command`` builds it)."""
    listed = [{"name": name, "type": ATTACHMENT_OPTION, "value": item["id"]}
              for name, item in (("content", content), ("style", style))]
    return {"id": str(APPLICATION_ID + 1), "name": "stylize", "type": 1, "options": listed,
            "resolved": {"attachments": {content["id"]: content, style["id"]: style}}}


def burst(standin: StandinThread, count: int, first_member: int) -> dict[str, float]:
    """Send ``count`` /stylize requests from different members at once; token → the moment each was sent."""
    content = standin.attachment("c.png", png_bytes(make_content(64, 48)))
    style = standin.attachment("s.png", png_bytes(make_style(48)))
    data = stylize_data(content, style)

    async def send_all() -> dict[str, float]:
        sent = {}
        for index in range(count):
            who = user(MEMBER_BASE + first_member + index, f"member{first_member + index}")
            at = time.monotonic()
            sent[await standin.standin.interact(2, data, who)] = at
        return sent
    return standin.call(send_all(), timeout=300)


def answers(standin: StandinThread, sent: dict[str, float], timeout: float) -> dict[str, dict]:
    """Per token: when its first answer (the callback) and its first visible reply came, and what it said."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for record in standin.records():
            if record.token in sent:
                seen = found.setdefault(record.token, {})
                if record.kind == "callback" and "first" not in seen:
                    seen["first"] = record.at
                    if record.payload.get("type") == 4:  # answered with a message at once (the busy reply)
                        seen["reply"], seen["text"] = record.at, record.payload["data"].get("content", "")
                elif record.kind == "webhook" and record.path.endswith(WEBHOOK_ORIGINAL) and "reply" not in seen:
                    seen["reply"], seen["text"] = record.at, record.payload.get("content", "")
        if sum("reply" in seen for seen in found.values()) == len(sent) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)  # the stand-in shares this process: polling less leaves it the time


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 0.5) * 1000, 1),
            "p99": round(percentile(values, 0.99) * 1000, 1), "max": round(max(values, default=0) * 1000, 1)}


class Watched(HeartbeatLag):
    """The bot process's CPU time, memory and heartbeat lag samples."""

    def __init__(self, bot: BotProcess, heartbeat: Path) -> None:
        super().__init__(heartbeat)
        self.pid = bot.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self, pid: int | None = None) -> float:
        for line in Path(f"/proc/{pid or self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def tree_rss_mb(self) -> float:
        """The bot with every process under it (its sandboxed decoders), as a container's memory counts them;
        pages they share are counted in each (an upper bound)."""
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        tree, grown = {self.pid}, True
        while grown:
            below = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree, grown = tree | below, bool(below)
        total = 0.0
        for pid in tree:
            try:
                total += self.rss_mb(pid)
            except OSError:
                continue
        return total


def start_bot(work: Path, standin: StandinThread, *, slots: int, hold: float, limits: dict) -> tuple[BotProcess, Watched]:
    work.mkdir(parents=True, exist_ok=True)
    config = write_config(work, standin, work / "no-weights.pth", limits=limits,
                          extra='[queue]\nbackend = "instant"\n')
    config.write_text(config.read_text().replace("progress_interval = 0.5", "progress_interval = 3.0"))
    bot = BotProcess(config, work / "bot.log", env={"NST_INSTANT_SLOTS": str(slots), "NST_INSTANT_SECONDS": str(hold)})
    bot.start().wait_ready()
    return bot, Watched(bot, work / "data" / "heartbeat.json")


def wait_quiet(standin: StandinThread, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.5)


def measure_burst(standin: StandinThread, watched: Watched, count: int) -> dict:
    """One burst of ``count`` requests from different members; what their answers took, once all are delivered."""
    watched.lag()
    cpu_before, began = watched.cpu_seconds(), time.monotonic()
    sent = burst(standin, count, 0)
    found = answers(standin, sent, timeout=60 + count * 0.2)
    firsts = [seen["first"] - sent[token] for token, seen in found.items() if "first" in seen]
    replies = [seen["reply"] - sent[token] for token, seen in found.items() if "reply" in seen]
    busy = sum("busy" in seen.get("text", "").lower() for seen in found.values())
    queued = sum("Queued" in seen.get("text", "") for seen in found.values())
    last_first = max((seen["first"] for seen in found.values() if "first" in seen), default=began)
    delivered = lambda: sum(record.kind == "webhook" and record.token in sent  # noqa: E731
                            and "here is your image" in record.payload.get("content", "")
                            for record in standin.records())
    wait_quiet(standin, lambda: delivered() >= queued, 60 + count * 0.2)
    time.sleep(2.5)  # the heartbeat covering the burst
    cpu = watched.cpu_seconds() - cpu_before
    return {"requests": count, "first_answer_ms": summary_ms(firsts), "reply_ms": summary_ms(replies),
            "acknowledged_per_s": round(len(firsts) / max(1e-3, last_first - min(sent.values())), 1),
            "late_first_answers": sum(value > 3.0 for value in firsts), "unanswered": count - len(firsts),
            "queued": queued, "busy": busy, "delivered": delivered(), "bot_cpu_seconds": round(cpu, 2),
            "bot_cpu_ms_per_request": round(cpu * 1000 / count, 1),
            "loop_lag_p99_ms": round(percentile(watched.lag(), 0.99), 1)}


def bursts(work: Path, standin: StandinThread, sizes: list[int], variants: dict[str, dict]) -> dict[str, list[dict]]:
    """Phase 1, interleaved: for each size, a fresh bot of each variant (its limits) takes one burst in turn, so
    the variants see the same moments of a shared machine."""
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    for count in sizes:
        for name, limits in variants.items():
            bot, watched = start_bot(work / f"burst-{name}-{count}", standin, slots=1000, hold=0.0, limits=limits)
            try:
                row = measure_burst(standin, watched, count)
            finally:
                bot.stop()
            rows[name].append(row)
            print(f"burst {count:5} ({name}): first answer p50 {row['first_answer_ms']['p50']} ms p99 "
                  f"{row['first_answer_ms']['p99']} ms; reply p99 {row['reply_ms']['p99']} ms; "
                  f"{row['acknowledged_per_s']}/s; queued {row['queued']}, busy {row['busy']}, late "
                  f"{row['late_first_answers']}; bot CPU {row['bot_cpu_ms_per_request']} ms/request; lag p99 "
                  f"{row['loop_lag_p99_ms']} ms", flush=True)
    return rows


def status_loop(work: Path, standin: StandinThread, sizes: list[int], window: float, hold: float,
                limits: dict) -> list[dict]:
    """Phase 2: a fresh bot per size, its engine busy with one job at a time, ``count`` jobs active."""
    rows = []
    for count in sizes:
        bot, watched = start_bot(work / f"status-{count}", standin, slots=1, hold=hold, limits=limits)
        try:
            idle_rss = watched.rss_mb()
            sent = burst(standin, count, 100_000 * (1 + len(rows)))
            answers(standin, sent, timeout=60 + count * 0.2)
            wait_quiet(standin, lambda: len({record.token for record in standin.records()
                                             if record.kind == "webhook" and record.token in sent
                                             and record.method == "POST"}) >= count, 60 + count * 0.2)
            queued_rss = watched.rss_mb()
            watched.lag()
            began, cpu_before = time.monotonic(), watched.cpu_seconds()
            start_index = len(standin.records())
            time.sleep(window)
            cpu = watched.cpu_seconds() - cpu_before
            records = [r for r in standin.records()[start_index:] if r.at >= began]
            edits = [r for r in records if r.method == "PATCH" and r.kind in ("webhook", "channel")]
            per_message: dict[str, list[float]] = {}
            for record in edits:
                per_message.setdefault(record.path, []).append(record.at)
            worst = max((max(sum(1 for other in times if at <= other < at + 5.0) for at in times)
                         for times in per_message.values()), default=0)
            row = {"active_jobs": count, "window_s": window, "edits_per_s": round(len(edits) / window, 1),
                   "most_edits_of_one_message_per_5s": worst,
                   "requests_per_s": round(len(records) / window, 1),
                   "rate_limited_429": sum(r.kind == "rate-limited" for r in records),
                   "bot_cpu_share": round(cpu / window, 3), "loop_lag_p99_ms": round(percentile(watched.lag(), 0.99), 1),
                   "rss_mb": round(queued_rss, 1), "rss_with_decoders_mb": round(watched.tree_rss_mb(), 1),
                   "memory_per_job_kb": round((queued_rss - idle_rss) * 1024 / count, 1)}
            print(f"status {count:5} jobs: {row['edits_per_s']} edits/s, worst message {worst}/5 s, "
                  f"429s {row['rate_limited_429']}, CPU {row['bot_cpu_share']:.0%}, lag p99 {row['loop_lag_p99_ms']} ms, "
                  f"{row['memory_per_job_kb']} kB/job", flush=True)
            rows.append(row)
        finally:
            bot.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--window", type=float, default=15.0, help="seconds the status loop is watched")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds the instant engine holds each job")
    parser.add_argument("--phases", default="bursts,status,store", help="which parts to run (comma-separated)")
    parser.add_argument("--out", default="capacity", help="name of the JSON and PNG under benchmarks/out/")
    args = parser.parse_args()
    burst_sizes = [10, 50, 100] if args.quick else [10, 100, 300, 1000]
    status_sizes = [10, 100] if args.quick else [10, 100, 300, 1000]
    store_sizes = [1000, 10_000] if args.quick else [10_000, 100_000]
    limits = {"max_queue": 5000, "max_jobs_per_user": 5, "cooldown_seconds": 0}
    unbounded = {**limits, "max_in_flight": 10_000}  # every request handled, however many: the bot before the busy reply
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, StandinThread() as standin:
        work = Path(tmp)
        results = {"machine": {"cpus": os.cpu_count(), "load_average_before": load_before,
                               "note": "a shared machine: ratios within this run are the claim, not absolute times"},
                   "bursts": [], "bursts_without_busy_reply": [], "status_loop": [], "store": []}
        if "bursts" in args.phases:
            measured = bursts(work, standin, burst_sizes, {"default": limits, "unbounded": unbounded})
            results["bursts"], results["bursts_without_busy_reply"] = measured["default"], measured["unbounded"]
        if "status" in args.phases:
            results["status_loop"] = status_loop(work, standin, status_sizes, args.window, args.hold, unbounded)
        if "store" in args.phases:
            from benchmarks.capacity_store import store_costs  # the store of this checkout
            results["store"] = store_costs(work / "store", store_sizes)
    results["machine"]["load_average_after"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(results, indent=2))
    draw(results, OUT / f"{args.out}.png")
    print(f"wrote {OUT / (args.out + '.json')} and {OUT / (args.out + '.png')}")


if __name__ == "__main__":
    main()
