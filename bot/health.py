"""Liveness: the bot's event loop writes a heartbeat file every few seconds; ``nst-bot healthcheck`` reads it.

The heartbeat also carries the event loop's lag (how late a short sleep wakes up), sampled every 50 ms, so
``benchmarks/event_loop_lag.py`` can read what the loop felt while a job ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Callable

from .config import Config

HEARTBEAT_FILE = "heartbeat.json"
HEARTBEAT_EVERY = 2.0
STALE_AFTER = 30.0
LAG_PROBE = 0.05


def heartbeat_path(config: Config) -> Path:
    return config.storage.data_dir / HEARTBEAT_FILE


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def heartbeat_loop(path: Path, connected: Callable[[], bool]) -> None:
    """Write the heartbeat, with the loop-lag samples since the previous one, until cancelled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    next_beat = loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_PROBE)
        samples.append((loop.time() - before - LAG_PROBE) * 1000)
        if loop.time() >= next_beat:
            lag = [round(max(0.0, s), 3) for s in samples]
            beat = {"time": time.time(), "pid": os.getpid(), "connected": connected(),
                    "lag_ms": {"p50": percentile(lag, 0.5), "p99": percentile(lag, 0.99),
                               "max": max(lag, default=0.0), "samples": lag}}
            tmp = path.with_name(path.name + ".part")
            tmp.write_text(json.dumps(beat))
            tmp.replace(path)
            samples = []
            next_beat = loop.time() + HEARTBEAT_EVERY


def check_health(config: Config) -> int:
    """Exit status 0 when the heartbeat is fresh (the event loop is running), 1 otherwise."""
    path = heartbeat_path(config)
    try:
        beat = json.loads(path.read_text())
        age = time.time() - float(beat["time"])
    except (OSError, ValueError, KeyError, TypeError):
        print(f"unhealthy: no heartbeat at {path} (is the bot running with this config?)")
        return 1
    if age > STALE_AFTER:
        print(f"unhealthy: the last heartbeat is {age:.0f} s old (limit {STALE_AFTER:.0f} s)")
        return 1
    state = "connected to Discord" if beat.get("connected") else "not connected to Discord yet"
    print(f"healthy: heartbeat {age:.1f} s ago, {state}, loop lag p99 {beat['lag_ms']['p99']:.1f} ms")
    return 0
