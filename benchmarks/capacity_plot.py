"""The curves of benchmarks/capacity.py as one PNG, drawn with Pillow (no plotting library needed): four
panels, each a log-scaled x axis of the load and the measured values against it."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

PANEL, MARGIN = (520, 300), 60
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], title: str, xlabel: str,
          series: dict[str, list[tuple[float, float]]], limit: tuple[str, float] | None = None,
          log_y: bool = False) -> None:
    """One chart: ``series`` name → (x, y) points, x on a log scale (y too with ``log_y``); ``limit``: a dashed
    horizontal line."""
    left, top = origin[0] + MARGIN, origin[1] + 30
    width, height = PANEL[0] - MARGIN - 20, PANEL[1] - 80
    points = [p for values in series.values() for p in values if p[0] > 0]
    if not points:
        return
    xs = [math.log10(x) for x, _ in points]
    ys = [y for _, y in points] + ([limit[1]] if limit else [])
    scale = (lambda y: math.log10(max(y, 0.01))) if log_y else (lambda y: y)
    low, high = (scale(min(ys)), scale(max(ys)) + 0.3) if log_y else (0.0, max(ys) * 1.1 or 1.0)
    high = high if high > low else low + 1
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (math.log10(x) - x0) / (x1 - x0) * width, top + height - (scale(y) - low) / (high - low) * height)

    draw.text((origin[0] + 10, origin[1] + 8), title, fill="black")
    draw.rectangle([left, top, left + width, top + height], outline="#888")
    for fraction in (0, 0.5, 1):
        value = low + fraction * (high - low)
        draw.text((origin[0] + 8, top + height - fraction * height - 6), f"{10 ** value if log_y else value:.3g}",
                  fill="#444")
    for x in sorted({x for x, _ in points}):
        px = at(x, 1)[0]
        draw.text((px - 12, top + height + 4), f"{x / 1000:g}k" if x >= 1000 else f"{x:g}", fill="#444")
    draw.text((left + width // 2 - 40, top + height + 20), xlabel, fill="#444")
    if limit:
        _, y = at(10 ** x0, limit[1])
        for start in range(int(left), int(left + width), 12):
            draw.line([start, y, start + 6, y], fill="#d62728")
        draw.text((left + 4, y - 14), limit[0], fill="#d62728")
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        line = [at(x, y) for x, y in values if x > 0]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for px, py in line:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.text((left + width - 200, top + 6 + 14 * index), name, fill=colour)


def draw(results: dict, path: Path) -> None:
    image = Image.new("RGB", (PANEL[0] * 2, PANEL[1] * 2), "white")
    canvas = ImageDraw.Draw(image)
    bursts, status, store = results["bursts"], results["status_loop"], results["store"]
    unbounded = results.get("bursts_without_busy_reply", [])
    panel(canvas, (0, 0), "Burst of N /stylize: time to answer (ms, log)", "requests arriving together",
          {"p50": [(r["requests"], r["first_answer_ms"]["p50"]) for r in bursts],
           "p99": [(r["requests"], r["first_answer_ms"]["p99"]) for r in bursts],
           "p99, no busy reply": [(r["requests"], r["first_answer_ms"]["p99"]) for r in unbounded],
           "reply p99, no busy reply": [(r["requests"], r["reply_ms"]["p99"]) for r in unbounded]},
          ("Discord's 3 s", 3000), log_y=True)
    panel(canvas, (PANEL[0], 0), "Burst: acknowledged per second; event-loop lag p99 (ms)", "requests",
          {"acks/s": [(r["requests"], r["acknowledged_per_s"]) for r in bursts],
           "lag p99 ms": [(r["requests"], r["loop_lag_p99_ms"]) for r in bursts]})
    panel(canvas, (0, PANEL[1]), "Status loop: edits/s, CPU % of one core, lag p99 (ms)", "active jobs",
          {"edits/s": [(r["active_jobs"], r["edits_per_s"]) for r in status],
           "CPU %": [(r["active_jobs"], r["bot_cpu_share"] * 100) for r in status],
           "lag p99 ms": [(r["active_jobs"], r["loop_lag_p99_ms"]) for r in status]}, ("50 requests/s", 50))
    names = ["purge (nothing old enough)", "oldest finished job (make room)"] if store else []
    tidy = [name for name in TIDY if store and name in store[0]["ms"]]
    if not (bursts or unbounded or status or store):
        return
    panel(canvas, (PANEL[0], PANEL[1]), "Store: ms per operation (log)", "finished jobs",
          {**{name.split(" (")[0]: [(r["finished_jobs"], r["ms"][name]) for r in store] for name in names},
           **{name.split(" (")[0] + ", no index": [(r["finished_jobs"], r["ms_without_capacity_indexes"][name])
                                                   for r in store] for name in names},
           **{TIDY[name]: [(r["finished_jobs"], r["ms"][name]) for r in store] for name in tidy}}, log_y=True)
    image.save(path)


# The housekeeping pass, now and as it was (every job id and folder each pass), in the store panel.
TIDY = {"tidy, a later pass (100 new jobs)": "tidy, later pass", "before: every id and folder (each pass)":
        "tidy before: every id"}


def redraw(json_path: Path) -> None:
    """The PNG again from a run's JSON (``python -m benchmarks.capacity_plot benchmarks/out/capacity.json``)."""
    import json
    draw(json.loads(json_path.read_text()), json_path.with_suffix(".png"))


if __name__ == "__main__":
    import sys
    redraw(Path(sys.argv[1]))
