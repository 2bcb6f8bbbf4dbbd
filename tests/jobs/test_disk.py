"""The data dir's disk budget and housekeeping, on a real SQLite job store and real files in a temporary folder."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from bot.jobs.disk import (INPUTS_GRACE, MB, ORPHAN_GRACE, DiskBudget, DiskFull, bytes_under, database_bytes,
                           estimate_png_bytes, tidy)
from bot.jobs.model import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, new_job_id
from bot.jobs.store import JobStore
from nst_engine.options import StylizeOptions
from tests.conftest import make_style

KB = 1024


def stored_job(store: JobStore, state: str, *, finished_ago: float = 0.0, file_bytes: int = 100 * KB) -> Job:
    """A job row plus input and result files of ``file_bytes`` each (incompressible, as real images are)."""
    now = time.time()
    job = Job(new_job_id(), 1, "user", 2, 3, "preset", "fast", StylizeOptions(size=64), state=state, created=now - finished_ago - 5,
              finished=None if state in (QUEUED, RUNNING) else now - finished_ago)
    store.add(job)
    store.job_dir(job.id).mkdir(parents=True)
    for path in (store.content_path(job.id), store.style_path(job.id), store.result_path(job.id)):
        path.write_bytes(os.urandom(file_bytes))
    return job


def budgeted(store: JobStore) -> int:
    """What the budget counts: the data dir without its SQLite files."""
    return bytes_under(store.root) - database_bytes(store.root)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture()
def store(tmp_path: Path) -> JobStore:
    opened = JobStore(tmp_path / "data")
    yield opened
    opened.close()


def test_an_accepted_job_is_synced_to_disk_before_it_is_acknowledged(store: JobStore) -> None:
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    job = stored_job(store, QUEUED)
    store.make_inputs_durable(job.id)  # fsync of the real files and folders succeeds
    other = sqlite3.connect(store.root / "jobs.sqlite3")  # a second reader sees the committed row at once
    assert other.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone() == (QUEUED,)
    other.close()


def test_usage_counts_every_file_under_the_data_dir(store: JobStore) -> None:
    stored_job(store, DONE, file_bytes=50 * KB)
    (store.root / "presets" / "123").mkdir(parents=True)
    (store.root / "presets" / "123" / "x.png").write_bytes(b"p" * 1000)
    database = sum(path.stat().st_size for path in store.root.glob("jobs.sqlite3*"))
    assert bytes_under(store.root) == database + 3 * 50 * KB + 1000
    assert bytes_under(store.root / "missing") == 0


def test_oldest_finished_jobs_go_first_until_the_new_job_fits(store: JobStore) -> None:
    oldest = stored_job(store, DONE, finished_ago=3000)
    failed = stored_job(store, FAILED, finished_ago=2000)
    newest = stored_job(store, DONE, finished_ago=1000)
    running = stored_job(store, RUNNING)
    used = budgeted(store)
    budget = DiskBudget(store, max_bytes=used + 100 * KB)

    budget.make_room(50 * KB)  # fits as it is: nothing is deleted
    assert all(store.get(job.id) for job in (oldest, failed, newest, running))

    budget.make_room(450 * KB)  # 350 KB more than is left: the two oldest finished jobs (300 KB each) go
    assert store.get(oldest.id) is None and not store.job_dir(oldest.id).exists()
    assert store.get(failed.id) is None and not store.job_dir(failed.id).exists()
    assert store.get(newest.id) is not None and store.inputs_kept(newest.id)
    assert store.get(running.id).state == RUNNING and store.inputs_kept(running.id)
    assert budgeted(store) + 450 * KB <= budget.max_bytes


def test_a_job_that_cannot_fit_is_refused_and_running_jobs_are_kept(store: JobStore) -> None:
    running = stored_job(store, RUNNING)
    done = stored_job(store, DONE, finished_ago=100)
    budget = DiskBudget(store, max_bytes=budgeted(store) + 10 * KB)
    with pytest.raises(DiskFull, match="storage is full right now.*try again later"):
        budget.make_room(1 * MB)
    assert store.get(done.id) is None  # it tried: the finished job's files were freed first
    assert store.get(running.id) is not None and store.inputs_kept(running.id)


def test_admitted_jobs_count_against_the_budget_before_their_files_exist(store: JobStore) -> None:
    budget = DiskBudget(store, max_bytes=budgeted(store) + 300 * KB)
    budget.make_room(200 * KB)
    with pytest.raises(DiskFull):
        budget.make_room(200 * KB)  # the first job's files are not written yet, but its room is taken


def test_the_file_systems_free_space_counts_even_without_a_budget(store: JobStore) -> None:
    old = stored_job(store, CANCELLED, finished_ago=100)
    free = shutil.disk_usage(store.root).free
    # Keep-free set just above what is free: only deleting files could help, and 300 KB cannot.
    budget = DiskBudget(store, max_bytes=0, keep_free_bytes=free + 10 * MB)
    with pytest.raises(DiskFull):
        budget.make_room(1)
    assert store.get(old.id) is None
    assert DiskBudget(store, max_bytes=0).room() > 0


def test_a_png_estimate_bounds_a_real_incompressible_png(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (301, 407, 3), dtype=np.uint8))
    noise.save(tmp_path / "noise.png")
    make_style(200).save(tmp_path / "style.png")
    assert (tmp_path / "noise.png").stat().st_size <= estimate_png_bytes(407, 301)
    assert (tmp_path / "style.png").stat().st_size <= estimate_png_bytes(200, 200)
    assert estimate_png_bytes(407, 301) < 1.01 * 407 * 301 * 3 + 8192


def test_tidy_drops_inputs_of_cancelled_and_failed_jobs_after_a_grace(store: JobStore) -> None:
    stale_cancelled = stored_job(store, CANCELLED, finished_ago=INPUTS_GRACE + 60)
    stale_failed = stored_job(store, FAILED, finished_ago=INPUTS_GRACE + 60)
    fresh_failed = stored_job(store, FAILED, finished_ago=10)
    done = stored_job(store, DONE, finished_ago=INPUTS_GRACE + 60)  # its Stronger / Weaker buttons need them
    queued = stored_job(store, QUEUED)

    assert tidy(store) == (2, 0)
    for job in (stale_cancelled, stale_failed):
        assert not store.content_path(job.id).exists() and not store.style_path(job.id).exists()
        assert store.result_path(job.id).exists() and store.get(job.id) is not None
    for job in (fresh_failed, done, queued):
        assert store.inputs_kept(job.id)
    assert tidy(store) == (0, 0)  # nothing left to do


def test_discarding_inputs_keeps_the_row_and_result(store: JobStore) -> None:
    job = stored_job(store, CANCELLED)
    store.discard_inputs(job.id)
    store.discard_inputs(job.id)  # twice is harmless
    assert not store.inputs_kept(job.id) and store.result_path(job.id).exists()
    assert store.get(job.id).state == CANCELLED


def test_tidy_removes_old_folders_with_no_job_row(store: JobStore) -> None:
    kept = stored_job(store, DONE)
    orphan = store.job_dir("0123456789abcdef")
    orphan.mkdir(parents=True)
    (orphan / "content.png").write_bytes(b"x" * 1000)
    being_written = store.job_dir("fedcba9876543210")  # a new job's folder: its row follows in a moment
    being_written.mkdir()
    stray = store.root / "jobs" / "stray.part"
    stray.write_bytes(b"y")
    age(orphan, ORPHAN_GRACE + 60)
    age(stray, ORPHAN_GRACE + 60)
    age(store.job_dir(kept.id), ORPHAN_GRACE + 60)

    assert tidy(store) == (0, 2)
    assert not orphan.exists() and not stray.exists()
    assert being_written.is_dir() and store.inputs_kept(kept.id)
    assert tidy(store, now=time.time() + ORPHAN_GRACE + 60) == (0, 1)
    assert not being_written.exists()


def test_databases_and_their_logs_never_evict_other_peoples_jobs(store: JobStore) -> None:
    from bot.face.menu_picks import ImageLink, Pick, PickStore, new_pick_id

    done = stored_job(store, DONE, finished_ago=100)
    budget = DiskBudget(store, max_bytes=budgeted(store) + 200 * KB)
    menus = PickStore(store.root, max_open=400)
    links = tuple(ImageLink(f"https://cdn.discordapp.com/{'x' * 500}/{n}.png", f"{n}.png", "image/png", 1)
                  for n in range(25))
    for _ in range(400):  # one member's burst of menus: megabytes of SQLite and write-ahead log
        menus.add(Pick(new_pick_id(), 5, 1, 2, 3, links, 0, "fast", time.time()))
    assert sum(path.stat().st_size for path in store.root.glob("menus.sqlite3*")) > 2 * MB
    budget.make_room(100 * KB)
    assert store.get(done.id) is not None and store.inputs_kept(done.id)
    menus.close()


def test_tidy_shrinks_the_job_stores_write_ahead_log(store: JobStore) -> None:
    for _ in range(300):
        stored_job(store, DONE, file_bytes=10)
    store.db.execute("CREATE TABLE filler (data BLOB)")
    store.db.execute("INSERT INTO filler VALUES (zeroblob(3000000))")
    wal = store.root / "jobs.sqlite3-wal"
    assert wal.stat().st_size > 2 * MB
    tidy(store)
    assert wal.stat().st_size <= 1 * MB
