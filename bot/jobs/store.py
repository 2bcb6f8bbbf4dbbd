"""The durable job store: SQLite under the data dir, input and result images beside it.

Every accepted job is written here before the user is told it is queued, so a restart or crash loses nothing:
queued and interrupted jobs are resumed, and buttons on old results find their inputs again. Interaction tokens
are never stored (they are short-lived secrets); jobs resumed after a restart deliver through channel messages.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterator

from PIL import Image

from nst_engine.animated_images import load_animation, save_animation
from nst_engine.animation import Animation
from nst_engine.options import StylizeOptions

from .model import ACTIVE_STATES, CANCELLED, FAILED, MAX_STYLES, Job

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER NOT NULL,
    style_label TEXT NOT NULL,
    quality TEXT NOT NULL,
    options TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    status_message_id INTEGER,
    result_message_id INTEGER,
    iterations_done INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    parent_id TEXT,
    device TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created);
-- For a store of many finished jobs (see CAPACITY_INDEXES): housekeeping reads only the rows it acts on.
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (state, finished);
CREATE INDEX IF NOT EXISTS jobs_finish_order ON jobs (COALESCE(finished, created));
-- /nst-settings values, one row each (channel_id 0: the whole server); read and written by bot/jobs/settings.py
CREATE TABLE IF NOT EXISTS server_settings (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (guild_id, channel_id, name)
);
"""


# Indexes that keep purge, tidy and making room independent of how many finished jobs the store holds
# (benchmarks/capacity.py measures them against their absence).
CAPACITY_INDEXES = ("jobs_created", "jobs_ended", "jobs_finish_order")
# Columns added after the first release: (name, SQL type), added to older stores when they are opened.
ADDED_COLUMNS = (("device", "TEXT"), ("frames", "INTEGER NOT NULL DEFAULT 1"))
WAL_LIMIT_BYTES = 1 << 20  # SQLite truncates its write-ahead log to this after a checkpoint
_JSON_COLUMNS = ("options", "notes")
_COLUMNS = tuple(f.name for f in fields(Job))


class JobStore:
    """Jobs in SQLite (``jobs.sqlite3``) and their files in ``jobs/<id>/`` under the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "jobs.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")  # the log shrinks back after checkpoints
        self.db.execute("PRAGMA synchronous=FULL")  # an accepted job survives a power cut (NORMAL may lose it)
        self.db.executescript(SCHEMA)
        self._add_missing_columns()
        # Failed and cancelled jobs that ended before this have had their inputs dropped (bot.jobs.disk.tidy):
        # each pass looks only at newer ones; a restart looks at all of them once.
        self.inputs_tidied_before = 0.0
        # Row-less job folders tidy found too young to remove; None until its first pass (bot.jobs.disk.tidy).
        self.unmatched_folders: set[str] | None = None

    def _add_missing_columns(self) -> None:
        """Bring a store written by an earlier version up to the current columns (new ones start empty)."""
        present = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}
        for name, kind in ADDED_COLUMNS:
            if name not in present:
                self.db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.db.close()

    def job_dir(self, job_id: str) -> Path:
        if not job_id.isalnum():  # ids come from custom_ids users could forge; never let them shape a path
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / "jobs" / job_id

    def content_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "content.png"

    def style_path(self, job_id: str, index: int = 0) -> Path:
        """The job's first style image (``style.png``, as before blends), or its ``index``-th (``style-2.png``…)."""
        return self.job_dir(job_id) / ("style.png" if index == 0 else f"style-{index + 1}.png")

    def style_paths(self, job_id: str) -> list[Path]:
        """The job's style images in blend order (one per style; a blend has up to ``MAX_STYLES``)."""
        found = (self.style_path(job_id, index) for index in range(MAX_STYLES))
        return [path for path in found if path.is_file()]

    def init_path(self, job_id: str) -> Path:
        """The image an upscale starts from (its parent's result); absent for other jobs."""
        return self.job_dir(job_id) / "init.png"

    def result_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result.png"

    def input_paths(self, job_id: str) -> list[Path]:
        """Every input file a job may have (those that exist or not)."""
        styles = [self.style_path(job_id, index) for index in range(MAX_STYLES)]
        return [self.content_path(job_id), *styles, self.init_path(job_id)]

    def inputs_kept(self, job_id: str) -> bool:
        return self.content_path(job_id).is_file() and self.style_path(job_id).is_file()

    def save_inputs(self, job_id: str, content: Image.Image | Animation, *styles: Image.Image,
                    init: Image.Image | None = None) -> None:
        """Write a job's input images (blocking; raises ``OSError`` when the disk is full or read-only); an
        animated content becomes an animated PNG (lossless, with its timing), so the job is still one file."""
        if not 1 <= len(styles) <= MAX_STYLES:
            raise ValueError(f"a job has 1 to {MAX_STYLES} style images, not {len(styles)}")
        self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        if isinstance(content, Animation):
            save_animation(content, self.content_path(job_id))
        else:
            content.save(self.content_path(job_id), "PNG")
        for index, style in enumerate(styles):
            style.save(self.style_path(job_id, index), "PNG")
        if init is not None:
            init.save(self.init_path(job_id), "PNG")

    def load_inputs(self, job_id: str) -> tuple[Image.Image | Animation, list[Image.Image]]:
        """A kept job's content (an :class:`Animation` for an animated one) and style images, for a re-run
        (blocking; an upscale's init is not re-used)."""
        styles = [Image.open(path).convert("RGB") for path in self.style_paths(job_id)]
        with Image.open(self.content_path(job_id)) as content:
            if getattr(content, "is_animated", False):
                return load_animation(self.content_path(job_id)), styles
            return content.convert("RGB"), styles

    def content_size(self, job_id: str) -> tuple[int, int]:
        """The kept content image's (width, height), read from its header only."""
        with Image.open(self.content_path(job_id)) as content:
            return content.size

    def style_sizes(self, job_id: str) -> list[tuple[int, int]]:
        """The kept style images' (width, height) in blend order, from their headers."""
        sizes = []
        for path in self.style_paths(job_id):
            with Image.open(path) as style:
                sizes.append(style.size)
        return sizes

    def add(self, job: Job) -> None:
        row = self._row(job)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({marks})", tuple(row.values()))

    def save(self, job: Job, *names: str) -> None:
        """Write the named fields of ``job`` (all of them when none are named)."""
        row = self._row(job)
        names = names or tuple(name for name in row if name != "id")
        assignments = ", ".join(f"{name} = ?" for name in names)
        self.db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*(row[n] for n in names), job.id))

    def get(self, job_id: str) -> Job | None:
        cursor = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        row = cursor.fetchone()
        return self._job(row) if row else None

    def active(self) -> list[Job]:
        """Queued and running jobs, oldest first (the queue order)."""
        # Through the state index: ordered by ``created`` alone, SQLite would walk every finished job's row.
        rows = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs INDEXED BY jobs_state WHERE state IN (?, ?) "
                               "ORDER BY created", ACTIVE_STATES)
        return [self._job(row) for row in rows]

    def last_created_by(self, user_id: int) -> float | None:
        row = self.db.execute("SELECT MAX(created) FROM jobs WHERE user_id = ?", (user_id,)).fetchone()
        return row[0]

    def purge(self, retention_days: float, now: float | None = None) -> int:
        """Delete finished jobs older than the retention period, with their files; returns how many."""
        cutoff = (now or time.time()) - retention_days * 86400
        old = [job.id for job in self._select("state NOT IN (?, ?) AND created < ?", (*ACTIVE_STATES, cutoff))]
        for job_id in old:
            self.remove(job_id)
        return len(old)

    def _select(self, where: str, params: tuple[Any, ...]) -> Iterator[Job]:
        for row in self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE {where}", params):
            yield self._job(row)

    @staticmethod
    def _row(job: Job) -> dict[str, Any]:
        row = asdict(job)  # options become a dict here: the store's own serialisation
        for name in _JSON_COLUMNS:
            row[name] = json.dumps(row[name])
        return row

    @staticmethod
    def _job(row: tuple[Any, ...]) -> Job:
        values = dict(zip(_COLUMNS, row))
        for name in _JSON_COLUMNS:
            values[name] = json.loads(values[name])
        values["options"] = StylizeOptions.from_mapping(values["options"])
        return Job(**values)

    # Disk housekeeping (bot.jobs.disk) -----------------------------------------------------------------

    def remove(self, job_id: str) -> None:
        """Forget a job: its files, then its row."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def discard_inputs(self, job_id: str) -> None:
        """Delete a job's input images but keep its row (and a result, if any): for a cancelled or failed job,
        whose inputs no button can use again."""
        for path in self.input_paths(job_id):
            path.unlink(missing_ok=True)

    def finished_oldest_first(self) -> Iterator[Job]:
        """Done, failed and cancelled jobs, the one that finished longest ago first, read a page at a time (making
        room usually needs only the first few of a long history; the caller may remove each as it goes)."""
        after: tuple[float, int] = (float("-inf"), 0)
        while True:
            page = self.db.execute(f"SELECT {', '.join(_COLUMNS)}, COALESCE(finished, created), rowid FROM jobs "
                                   "WHERE state NOT IN (?, ?) AND (COALESCE(finished, created), rowid) > (?, ?) "
                                   "ORDER BY COALESCE(finished, created), rowid LIMIT 64",
                                   (*ACTIVE_STATES, *after)).fetchall()
            if not page:
                return
            after = page[-1][-2:]
            yield from (self._job(row[:-2]) for row in page)

    def ended_without_result(self, before: float, since: float = 0.0) -> list[str]:
        """Ids of failed and cancelled jobs that finished before ``before`` and not before ``since`` (time stamps)."""
        rows = self.db.execute("SELECT id FROM jobs WHERE state IN (?, ?) AND finished >= ? AND finished < ?",
                               (FAILED, CANCELLED, since, before))
        return [job_id for (job_id,) in rows]

    def make_inputs_durable(self, job_id: str) -> None:
        """fsync a new job's input images and their folders, so the job row written next never outlives them
        after a power cut."""
        for path in (path for path in self.input_paths(job_id) if path.is_file()):
            with path.open("rb") as stored:
                os.fsync(stored.fileno())
        for directory in (self.job_dir(job_id), self.job_dir(job_id).parent):
            descriptor = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
