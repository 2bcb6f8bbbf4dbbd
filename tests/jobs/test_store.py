"""The job store's files and rows on a real SQLite store in a temporary folder: the on-disk layout a restart (or
an upgrade) reads back, whole-job saves, inputs read back as RGB, and purging by age. Found by mutation testing
(docs/mutation-report.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.jobs.model import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, new_job_id
from bot.jobs.store import JobStore
from nst_engine.options import StylizeOptions


@pytest.fixture()
def store(tmp_path: Path):
    opened = JobStore(tmp_path / "data")
    yield opened
    opened.close()


def stored(store: JobStore, state: str = DONE, created: float = 1000.0, **fields) -> Job:
    job = Job(new_job_id(), 1, "user", 5, 6, "a style", "fast", StylizeOptions(size=32), state=state,
              created=created, **fields)
    store.add(job)
    return job


def test_a_jobs_files_are_where_earlier_versions_put_them(store: JobStore, tmp_path: Path) -> None:
    """An upscale queued before an upgrade resumes after it: the names on disk are part of the stored data."""
    job = stored(store)
    picture = Image.new("RGB", (8, 6), "red")
    store.save_inputs(job.id, picture, picture, picture, init=picture)
    picture.save(store.result_path(job.id))
    folder = tmp_path / "data" / "jobs" / job.id
    assert sorted(path.name for path in folder.iterdir()) == ["content.png", "init.png", "result.png", "style-2.png",
                                                              "style.png"]
    assert store.input_paths(job.id)[-1] == folder / "init.png" == store.init_path(job.id)
    store.discard_inputs(job.id)
    assert [path.name for path in folder.iterdir()] == ["result.png"]


@pytest.mark.parametrize("forged", ["../../etc", "a/b", "", "0123 4567"])
def test_a_job_id_that_could_shape_a_path_is_refused_naming_it(store: JobStore, forged: str) -> None:
    with pytest.raises(ValueError) as refused:
        store.job_dir(forged)
    assert str(refused.value) == f"bad job id {forged!r}"


def test_saving_a_jobs_inputs_again_replaces_them(store: JobStore) -> None:
    job = stored(store)
    store.save_inputs(job.id, Image.new("RGB", (8, 6)), Image.new("RGB", (4, 4)))
    store.save_inputs(job.id, Image.new("RGB", (10, 7)), Image.new("RGB", (5, 5)))
    assert store.content_size(job.id) == (10, 7) and store.style_sizes(job.id) == [(5, 5)]


def test_inputs_are_kept_only_while_the_content_and_the_first_style_both_are(store: JobStore) -> None:
    job = stored(store)
    store.save_inputs(job.id, Image.new("RGB", (8, 6)), Image.new("RGB", (4, 4)))
    assert store.inputs_kept(job.id)
    store.style_path(job.id).unlink()
    assert not store.inputs_kept(job.id)


def test_inputs_read_back_for_a_rerun_are_rgb_whatever_mode_they_were_kept_in(store: JobStore) -> None:
    job = stored(store)
    store.save_inputs(job.id, Image.new("RGBA", (8, 6), (9, 8, 7, 100)), Image.new("L", (4, 4), 50))
    content, (style,) = store.load_inputs(job.id)
    assert (content.mode, content.getpixel((0, 0))) == ("RGB", (9, 8, 7))
    assert (style.mode, style.getpixel((0, 0))) == ("RGB", (50, 50, 50))


def test_saving_a_job_without_naming_fields_saves_all_of_them(store: JobStore) -> None:
    job = stored(store, state=QUEUED)
    job.state, job.iterations_done, job.error, job.notes = FAILED, 7, "boom", ["capped"]
    store.save(job)
    again = store.get(job.id)
    assert (again.state, again.iterations_done, again.error, again.notes) == (FAILED, 7, "boom", ["capped"])
    job.error = "only this"
    job.iterations_done = 9
    store.save(job, "error")
    assert (store.get(job.id).error, store.get(job.id).iterations_done) == ("only this", 7)


def test_purge_removes_finished_jobs_past_retention_with_their_files(store: JobStore) -> None:
    now, day = 10_000_000.0, 86400
    old_done, old_failed, recent = stored(store, created=now - 8 * day), stored(store, FAILED, now - 8 * day), \
        stored(store, CANCELLED, now - 6 * day)
    just_past = stored(store, created=now - 7 * day - 3)  # 3 s past a 7-day retention: purged too
    old_queued, old_running = stored(store, QUEUED, now - 9 * day), stored(store, RUNNING, now - 9 * day)
    for job in (old_done, recent):
        store.save_inputs(job.id, Image.new("RGB", (8, 6)), Image.new("RGB", (4, 4)))
    assert store.purge(retention_days=7, now=now) == 3
    every = (old_done, old_failed, recent, just_past, old_queued, old_running)
    assert {job.id for job in every if store.get(job.id)} == {recent.id, old_queued.id, old_running.id}
    assert not store.job_dir(old_done.id).exists() and store.inputs_kept(recent.id)
    assert store.purge(retention_days=7, now=now) == 0


def test_finished_jobs_come_oldest_first_whole_page_after_page(store: JobStore) -> None:
    jobs = [stored(store, DONE if n % 3 else FAILED, created=float(n), finished=1000.0 - n, frames=1 + n % 4)
            for n in range(70)]  # more than one page of 64
    stored(store, QUEUED, created=0.5)
    assert list(store.finished_oldest_first()) == sorted(jobs, key=lambda job: job.finished)
