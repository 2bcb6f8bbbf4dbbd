"""Liveness: the bot's event loop writes a heartbeat file every few seconds; ``nst-bot healthcheck`` reads it.

The heartbeat names the bot's process (pid and start time), so the check fails at once when that process is
gone, and ``nst-bot run`` marks it "stopped" when it exits; a stale heartbeat catches a stuck event loop. It
also says whether the bot is connected to Discord (and, for a sharded bot, which shards are), and carries
the event loop's lag (how late a short sleep wakes up), sampled every 50 ms, so
``benchmarks/event_loop_lag.py`` can read what the loop felt while a job ran.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from bot.config import Config

HEARTBEAT_FILE = "heartbeat.json"
HEARTBEAT_EVERY = 2.0
STALE_AFTER = 30.0
LAG_PROBE = 0.05

log = logging.getLogger("nst-bot")


def heartbeat_path(config: Config) -> Path:
    return config.storage.data_dir / HEARTBEAT_FILE


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def process_started(pid: int) -> str | None:
    """The kernel's start time of a process (/proc/PID/stat field 22), which tells it apart from a later
    process given the same pid; None where /proc cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_running(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    now = process_started(pid)
    return started is None or now is None or now == started


async def heartbeat_loop(path: Path, connection: Callable[[], dict[str, Any]]) -> None:
    """Write the heartbeat, with ``connection()`` (``connected``, and ``shards`` where there are several) and the
    loop-lag samples since the previous one, until cancelled.

    A failed write (full disk, read-only data folder) is logged once and retried at the next beat: the loop
    never dies, so the heartbeat comes back by itself when the disk does.
    """
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    next_beat = loop.time()
    failing = False
    identity = {"pid": os.getpid(), "started": process_started(os.getpid())}
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_PROBE)
        samples.append((loop.time() - before - LAG_PROBE) * 1000)
        if loop.time() >= next_beat:
            lag = [round(max(0.0, s), 3) for s in samples]
            beat = {"time": time.time(), **identity, "state": "running", **connection(),
                    "lag_ms": {"p50": percentile(lag, 0.5), "p99": percentile(lag, 0.99),
                               "max": max(lag, default=0.0), "samples": lag}}
            try:
                _write(path, beat)
            except OSError as error:
                if not failing:
                    log.warning("cannot write the heartbeat %s (%s); retrying every %g s", path,
                                error.strerror or error, HEARTBEAT_EVERY)
                failing = True
            else:
                if failing:
                    log.info("the heartbeat %s is written again", path)
                failing = False
            samples = []
            next_beat = loop.time() + HEARTBEAT_EVERY


def _write(path: Path, beat: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(beat))
    tmp.replace(path)


def mark_stopped(config: Config) -> None:
    """Record this process's exit in its heartbeat, so the health check says "stopped" at once.

    Only a heartbeat this process wrote is touched (another bot may be running with the same data folder).
    """
    path = heartbeat_path(config)
    try:
        beat = json.loads(path.read_text())
        if beat.get("pid") == os.getpid():
            _write(path, {**beat, "state": "stopped", "stopped": time.time()})
    except (OSError, ValueError, AttributeError):
        pass  # nothing written, or nowhere to write: the pid check still tells the bot is gone


def check_health(config: Config) -> int:
    """Exit status 0 when the bot's process runs and its heartbeat is fresh (the event loop turns), else 1."""
    path = heartbeat_path(config)
    try:
        beat = json.loads(path.read_text())
        age = time.time() - float(beat["time"])
    except (OSError, ValueError, KeyError, TypeError):
        print(f"unhealthy: no heartbeat at {path} (is the bot running with this config?)")
        return 1
    pid = beat.get("pid")
    if beat.get("state") == "stopped":
        stopped = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(beat.get("stopped", beat["time"]))))
        print(f"unhealthy: the bot (pid {pid}) stopped at {stopped}")
        return 1
    if isinstance(pid, int) and not process_running(pid, beat.get("started")):
        print(f"unhealthy: the bot (pid {pid}) that wrote {path} is no longer running")
        return 1
    if age > STALE_AFTER:
        print(f"unhealthy: the last heartbeat is {age:.0f} s old (limit {STALE_AFTER:.0f} s)")
        return 1
    state = "connected to Discord" if beat.get("connected") else "not connected to Discord yet"
    print(f"healthy: heartbeat {age:.1f} s ago, {state}{shard_summary(beat.get('shards'))}, "
          f"loop lag p99 {beat['lag_ms']['p99']:.1f} ms")
    return 0


def shard_summary(shards: object) -> str:
    """", shards 2 of 3 connected (shard 1 is not)" for a sharded bot's heartbeat; "" otherwise. A shard that
    lost its connection reconnects by itself; its servers get no answers meanwhile, which is why it is named."""
    if not isinstance(shards, dict) or not shards:
        return ""
    down = sorted((shard for shard, up in shards.items() if not up), key=lambda shard: int(shard))
    missing = f" (shard{'s' if len(down) > 1 else ''} {', '.join(down)} {'are' if len(down) > 1 else 'is'} not)"
    return f", shards {len(shards) - len(down)} of {len(shards)} connected" + (missing if down else "")
