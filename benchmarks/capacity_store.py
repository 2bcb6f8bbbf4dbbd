"""The job store's cost with many finished jobs (part of benchmarks/capacity.py): each housekeeping and look-up
operation timed on a store of N done/failed jobs, each with its folder, with the indexes the store creates and
without those added for capacity (the baseline, measured in the same run). Housekeeping (tidy) is timed on its
first pass after a start (every folder), on a later pass (the jobs new since the last), and against what every
pass did before: every job id read into a set and every folder checked against it."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from nst_engine.options import StylizeOptions

from bot.jobs.disk import tidy
from bot.jobs.model import DONE, FAILED, Job, new_job_id
from bot.jobs.store import CAPACITY_INDEXES, JobStore

DAY = 86400.0
TEMPLATE = Job("x", 0, "member", 1, 2, "preset *Waves*", "standard", StylizeOptions())


def filled_store(folder: Path, count: int) -> JobStore:
    """A store with ``count`` finished jobs spread over the last 30 days (a tenth failed), from 1,000 members."""
    store = JobStore(folder)
    now, template = time.time(), TEMPLATE
    rows = []
    for index in range(count):
        created = now - 30 * DAY * (count - index) / count
        job = replace(template, id=new_job_id(), user_id=index % 1000, state=FAILED if index % 10 == 0 else DONE,
                      created=created, started=created + 1, finished=created + 60)
        rows.append(tuple(JobStore._row(job).values()))
    names = tuple(JobStore._row(template))
    store.db.execute("BEGIN")
    store.db.executemany(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})", rows)
    store.db.execute("COMMIT")
    for row in rows:
        store.job_dir(row[0]).mkdir(parents=True)
    return store


NEW_BETWEEN_PASSES = 100  # jobs written between two housekeeping passes (5 minutes apart) in the later-pass timing


def later_tidy_ms(store: JobStore, repeat: int = 5) -> float:
    """Fastest of ``repeat`` housekeeping passes, each after ``NEW_BETWEEN_PASSES`` new jobs (folder, then row)."""
    tidy(store)  # the first pass after opening
    best = float("inf")
    for _ in range(repeat):
        for _ in range(NEW_BETWEEN_PASSES):
            job = replace(TEMPLATE, id=new_job_id(), state=DONE, created=time.time(), finished=time.time())
            store.job_dir(job.id).mkdir(parents=True)
            store.add(job)
        began = time.perf_counter()
        tidy(store)
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 3)


def first_tidy_ms(store: JobStore) -> float:
    def first_pass() -> None:
        store.unmatched_folders = None  # as the store is after opening
        tidy(store)
    return timed_ms(first_pass)


def every_id_pass(store: JobStore) -> int:
    """What each housekeeping pass did before: every job id into a set, every folder looked up in it."""
    known = {job_id for (job_id,) in store.db.execute("SELECT id FROM jobs")}
    return sum(entry.name not in known for entry in os.scandir(store.root / "jobs"))


def timed_ms(action, repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs, in milliseconds (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 3)


def operations(store: JobStore) -> dict[str, float]:
    return {
        "purge (nothing old enough)": timed_ms(lambda: store.purge(retention_days=60)),
        "tidy, first pass after a start (every folder)": first_tidy_ms(store),
        f"tidy, a later pass ({NEW_BETWEEN_PASSES} new jobs)": later_tidy_ms(store),
        "before: every id and folder (each pass)": timed_ms(lambda: every_id_pass(store)),
        "oldest finished job (make room)": timed_ms(lambda: next(iter(store.finished_oldest_first()), None)),
        "cooldown look-up": timed_ms(lambda: store.last_created_by(7), repeat=50),
        "active jobs (start, resume)": timed_ms(store.active),
        "job by id (a button press)": timed_ms(lambda: store.get("missing"), repeat=50),
    }


def store_costs(folder: Path, sizes: list[int]) -> list[dict]:
    rows = []
    for count in sizes:
        store = filled_store(folder / str(count), count)
        indexed = operations(store)
        for name in CAPACITY_INDEXES:
            store.db.execute(f"DROP INDEX {name}")
        baseline = operations(store)
        store.close()
        rows.append({"finished_jobs": count, "ms": indexed, "ms_without_capacity_indexes": baseline})
        print(f"store with {count} finished jobs: " + ", ".join(
            f"{name} {indexed[name]:.2f} ms (was {baseline[name]:.2f})" for name in indexed), flush=True)
    return rows
