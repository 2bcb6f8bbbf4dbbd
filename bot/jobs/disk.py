"""The data dir's disk budget, and the housekeeping that keeps it from filling up.

Everything the bot writes lives under ``[storage] data_dir``: the job store, each job's input and result images,
presets added from Discord, the open menus. ``[storage] max_disk_mb`` caps the files (images), not the SQLite
databases and their write-ahead logs: those are bounded on their own (menus per member and by age, logs
truncated after checkpoints), and counting them would let one member's menus evict other people's jobs. Before a new job is stored,
:meth:`DiskBudget.make_room` deletes the files and rows of the jobs that finished longest ago until the job fits
(in the budget and in the file system's free space); when even that is not enough, it raises
:class:`DiskFull`, whose message is meant for the requester. :func:`tidy` is the periodic pass: inputs of
cancelled and failed jobs (no button can use them again) and folders that belong to no job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from bot.errors import UserError

from .store import JobStore

log = logging.getLogger(__name__)

MB = 1024 * 1024
KEEP_FREE_BYTES = 64 * MB  # left free on the file system for SQLite, logs and the heartbeat
REMEASURE_AFTER = 30.0  # seconds a measured total is trusted (jobs admitted meanwhile are added to it)
INPUTS_GRACE = 300.0  # seconds a cancelled or failed job's inputs are kept (a late look at them is harmless)
ORPHAN_GRACE = 600.0  # a job folder is written just before its row; younger folders are left alone
PNG_OVERHEAD = 4096  # signature, header and end chunks, zlib framing
DATABASES = "*.sqlite3*"  # the SQLite files at the data dir's top level, with their -wal and -shm files


class DiskFull(UserError):
    """No room for a new job even after deleting old ones; the message is shown to the requester."""


def estimate_png_bytes(width: int, height: int) -> int:
    """An upper bound on an RGB PNG of that size (PNG stores incompressible pixels with little overhead)."""
    raw = height * (width * 3 + 1)  # one filter byte per row
    return raw + raw // 1000 + PNG_OVERHEAD


def bytes_under(path: Path) -> int:
    """Bytes in the files below ``path`` (0 when it does not exist); files that vanish meanwhile count 0."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += bytes_under(Path(entry.path))
            else:
                total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total


def database_bytes(root: Path) -> int:
    """Bytes in the SQLite files at the top of the data dir (outside the budget)."""
    total = 0
    for path in root.glob(DATABASES):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


class DiskBudget:
    """Keeps the data dir under ``max_bytes`` (0: no budget, only the file system's free space counts).

    The total is measured by walking the data dir at most every ``REMEASURE_AFTER`` seconds; each admitted job
    adds its estimate meanwhile. A queued job's result is only on disk once it is done, so the data dir can pass
    the budget by the results of the jobs still in the queue.
    """

    def __init__(self, store: JobStore, max_bytes: int, keep_free_bytes: int = KEEP_FREE_BYTES) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.keep_free_bytes = keep_free_bytes
        self._used: int | None = None
        self._measured_at = 0.0

    def usage(self) -> int:
        """Bytes used under the data dir, re-measured when the last measurement is stale."""
        if self._used is None or time.monotonic() - self._measured_at > REMEASURE_AFTER:
            self._used = bytes_under(self.store.root) - database_bytes(self.store.root)
            self._measured_at = time.monotonic()
        return self._used

    def room(self) -> int:
        """Bytes a new job may still use: under the budget and in the file system's free space."""
        free = shutil.disk_usage(self.store.root).free - self.keep_free_bytes
        return min(free, self.max_bytes - self.usage()) if self.max_bytes else free

    def make_room(self, bytes_needed: int) -> None:
        """Delete the jobs that finished longest ago until ``bytes_needed`` fits; :class:`DiskFull` if it cannot.

        Runs on the thread that owns the store (its SQLite connection); the common case is one comparison.
        """
        if self.room() < bytes_needed:
            freed = []
            for job in self.store.finished_oldest_first():
                if self.room() >= bytes_needed:
                    break
                size = bytes_under(self.store.job_dir(job.id))
                self.store.remove(job.id)
                self._used = self.usage() - size
                freed.append(job.id)
            if freed:
                log.info("disk budget: removed %d finished job(s) to make room for a new one", len(freed))
            if self.room() < bytes_needed:
                log.warning("disk budget: no room for a new job (%d MB needed, %d MB used of %s)", bytes_needed // MB,
                            self.usage() // MB, f"{self.max_bytes // MB} MB" if self.max_bytes else "no budget")
                raise DiskFull("The bot's storage is full right now, so it cannot take new images; "
                               "please try again later.")
        self._used = self.usage() + bytes_needed


def tidy(store: JobStore, now: float | None = None) -> tuple[int, int]:
    """Drop the inputs of cancelled and failed jobs after a grace period, and job folders with no job row;
    checkpoint the job store's write-ahead log, so it shrinks back to its limit.

    Returns (jobs whose inputs were dropped, orphan folders removed)."""
    now = time.time() if now is None else now
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dropped = 0
    cutoff = now - INPUTS_GRACE
    for job_id in store.ended_without_result(before=cutoff, since=store.inputs_tidied_before):
        if store.content_path(job_id).exists() or store.style_path(job_id).exists():
            store.discard_inputs(job_id)
            dropped += 1
    store.inputs_tidied_before = max(store.inputs_tidied_before, cutoff)  # the next pass looks only at newer ones
    orphans = _remove_orphans(store, now)
    if dropped or orphans:
        log.info("tidied the data dir: inputs of %d cancelled/failed job(s), %d folder(s) with no job", dropped,
                 orphans)
    return dropped, orphans


def _remove_orphans(store: JobStore, now: float) -> int:
    """Remove what lies in ``jobs/`` with no job row and is older than ``ORPHAN_GRACE``. Only a crash between a
    job's folder and its row leaves one (the job core deletes the folder of a job it could not store), so the first
    pass after the store opens looks at everything there, and later passes only at what was too young then: a
    pass never reads the whole history again."""
    folders = store.root / "jobs"
    if store.unmatched_folders is None:
        try:
            names = set(os.listdir(folders))
        except FileNotFoundError:
            names = set()
        known = {job_id for (job_id,) in store.db.execute("SELECT id FROM jobs")}  # once: quicker than look-ups
    else:
        names = store.unmatched_folders
        known = _with_rows(store, names)
    young, orphans = set(), 0
    for name in names - known:
        path = folders / name
        try:
            if now - path.lstat().st_mtime <= ORPHAN_GRACE:
                young.add(name)
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        orphans += 1
    store.unmatched_folders = young
    return orphans


def _with_rows(store: JobStore, names: set[str]) -> set[str]:
    """Those of ``names`` that are ids of stored jobs: a primary-key look-up each, 500 at a time."""
    wanted, found = sorted(names), set()
    for start in range(0, len(wanted), 500):
        page = wanted[start:start + 500]
        rows = store.db.execute(f"SELECT id FROM jobs WHERE id IN ({', '.join('?' * len(page))})", page)
        found.update(job_id for (job_id,) in rows)
    return found
