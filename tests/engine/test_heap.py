"""nst_engine/heap.py: a job's iterations reuse the memory the previous one freed, and the job hands it back.

Each run is a fresh process, so malloc's thresholds are the ones the test sets: a fixed 128 KiB (glibc's starting
threshold), under which every feature map is mapped afresh and faulted in, page by page, on every iteration. The
control is the same process with ``heap.kept`` replaced by a no-op (the only stand-in here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nst_engine import heap

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="malloc tuning needs glibc's mallopt")

REPO = Path(__file__).resolve().parents[2]

# Two 128 px jobs in one process; prints each iteration's page faults and the resident MB during and after each.
JOBS = """
import contextlib, json, resource, sys
from nst_engine import heap
from nst_engine.options import StylizeOptions
from nst_engine.transfer import Engine
from tests.conftest import make_content, make_style

heap._LIBC.mallopt(heap.M_MMAP_THRESHOLD, 128 * 1024)
heap._LIBC.mallopt(heap.M_TRIM_THRESHOLD, 128 * 1024)
if sys.argv[2] == "control":
    heap.kept = contextlib.nullcontext

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20

engine = Engine(sys.argv[1])
content, style = make_content(128, 96), make_style(128)
jobs = []
for _ in range(2):
    faults, resident = [], []
    def report(_):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        resident.append(resident_mb())
    engine.stylize(content, [style], StylizeOptions(size=128, min_scale=128, iterations=6), on_progress=report)
    jobs.append({"faults": [b - a for a, b in zip(faults, faults[1:])], "during": max(resident),
                 "after": resident_mb()})
print(json.dumps(jobs))
"""


def two_jobs(weights: Path, variant: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", JOBS, str(weights), variant], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_jobs_iterations_reuse_freed_memory_and_the_job_hands_it_back(vgg_weights: Path) -> None:
    control, kept = two_jobs(vgg_weights, "control"), two_jobs(vgg_weights, "kept")
    # Without the heap kept every iteration maps its feature maps afresh: thousands of pages each time.
    assert min(min(job["faults"]) for job in control) > 2000
    # Kept, the iterations after a job's first fault in next to nothing, in the second job as in the first.
    for with_heap, without in zip(kept, control):
        assert sum(with_heap["faults"][1:]) < sum(without["faults"][1:]) / 20
    # And what a job freed goes back when it ends: no more stays resident than without the heap kept.
    for with_heap, without in zip(kept, control):
        assert with_heap["during"] > with_heap["after"]
        assert with_heap["after"] < without["after"] + 16


class _RecordingLibc:
    """Stands in for glibc to see the calls (the real ones are checked above, by their effect)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_nested_blocks_hand_memory_back_once_when_the_outermost_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _RecordingLibc()
    monkeypatch.setattr(heap, "_LIBC", libc)
    keep = [("mallopt", heap.M_MMAP_THRESHOLD, heap.MMAP_THRESHOLD), ("mallopt", heap.M_TRIM_THRESHOLD, heap.KEEP_ALL)]
    with heap.kept():
        for _ in range(3):  # an animation's frames, each a batch of its own
            with heap.kept():
                pass
        assert libc.calls == keep
    assert libc.calls == [*keep, ("mallopt", heap.M_TRIM_THRESHOLD, heap.DEFAULT_TRIM), ("malloc_trim", 0)]
    with pytest.raises(ValueError), heap.kept():
        raise ValueError("a job that fails")
    assert libc.calls[-1] == ("malloc_trim", 0) and len(libc.calls) == 8
