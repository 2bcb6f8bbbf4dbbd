"""A job store written before a column existed opens with that column added: real SQLite in a temporary folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.jobs.model import DONE, Job
from bot.jobs.store import SCHEMA, JobStore
from nst_engine.options import StylizeOptions


def test_a_store_without_the_device_column_gains_it_and_keeps_its_jobs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "jobs.sqlite3") as old:  # the schema as it was before devices were recorded
        old.executescript(SCHEMA.replace(",\n    device TEXT\n", "\n"))
        assert "device" not in {row[1] for row in old.execute("PRAGMA table_info(jobs)")}
        old.execute("INSERT INTO jobs (id, user_id, user_name, channel_id, style_label, quality, options, state, "
                    "created) VALUES ('0123456789abcdef', 1, 'user', 3, 'preset', 'fast', ?, 'done', 1.0)",
                    ('{"size": 64}',))
    store = JobStore(data)
    try:
        kept = store.get("0123456789abcdef")
        assert kept is not None and kept.state == DONE and kept.device is None and kept.options.size == 64
        kept.device = "cpu"
        store.save(kept, "device")
        new = Job("fedcba9876543210", 1, "user", None, 3, "preset", "fast", StylizeOptions(size=32), device="cuda (X)")
        store.add(new)
        assert store.get(kept.id).device == "cpu" and store.get(new.id).device == "cuda (X)"
    finally:
        store.close()
    JobStore(data).close()  # opening an up-to-date store again changes nothing
