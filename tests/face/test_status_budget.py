"""The status loop's edit budget: with a long queue it sends at most its budget of edits per pass, running jobs
first, then the messages updated longest ago, so every message is reached in turn and the bot stays under
Discord's rate limits. The presenter is the real one; Discord's side of a message is a recorder here (the
end-to-end behaviour against the stand-in is measured by benchmarks/capacity.py)."""

from __future__ import annotations

from bot.face.presenter import DiscordPresenter, Track
from bot.jobs.model import QUEUED, RUNNING, ActiveJob, Job
from nst_engine.options import StylizeOptions


class RecordedMessages:
    """Where a status message's edits go: a list of (job id, text)."""

    def __init__(self, job_id: str, sent: list[tuple[str, str]]) -> None:
        self.job_id, self.sent, self.status_message_id = job_id, sent, 1

    async def edit_status(self, text: str, preview: bytes | None = None, view: object = None) -> None:
        self.sent.append((self.job_id, text))


class Queue:
    """The core's views the presenter reads: active jobs in order, positions, start times."""

    def __init__(self, jobs: list[ActiveJob]) -> None:
        self.jobs = jobs

    def active_jobs(self) -> list[ActiveJob]:
        return self.jobs

    def position(self, job_id: str) -> int:
        waiting = [active.id for active in self.jobs if active.job.state == QUEUED]
        return waiting.index(job_id) + 1 if job_id in waiting else 0

    def eta_until_start(self, job_id: str) -> float | None:
        return None

    def note_status_message(self, job: Job, message_id: int | None) -> None:
        pass


def job_id(index: int) -> str:
    return f"{index:016x}"  # job ids are 16 hex digits (the buttons' custom ids check it)


def presenter(count: int) -> tuple[DiscordPresenter, Queue, list[tuple[str, str]]]:
    jobs = [ActiveJob(Job(job_id(index), index, f"m{index}", 1, 2, "preset", "fast", StylizeOptions(size=64),
                          state=RUNNING if index == 0 else QUEUED)) for index in range(count)]
    queue, sent = Queue(jobs), []
    shown = DiscordPresenter(bot=None, core=queue, progress_interval=3.0)
    for active in jobs:
        shown.tracks[active.id] = Track(RecordedMessages(active.id, sent))
    return shown, queue, sent


async def test_a_pass_sends_at_most_its_budget_and_reaches_every_message_in_turn() -> None:
    shown, queue, sent = presenter(50)
    assert await shown.refresh_due(budget=20) == 20
    assert [job_id for job_id, _ in sent] == [job_id(index) for index in range(20)]
    sent.clear()
    await shown.refresh_due(budget=20)
    await shown.refresh_due(budget=20)
    assert [job_id for job_id, _ in sent] == [job_id(index) for index in range(20, 50)]  # the rest, oldest first
    sent.clear()
    assert await shown.refresh_due(budget=20) == 0  # nothing changed: nothing sent, none of the budget spent


async def test_the_running_job_and_the_longest_unchanged_messages_go_first_after_the_queue_moves() -> None:
    shown, queue, sent = presenter(30)
    for _ in range(2):
        await shown.refresh_due(budget=20)
    sent.clear()
    queue.jobs[0].iteration, queue.jobs[0].total = 3, 10  # progress on the running job
    queue.jobs.pop(1)  # a queued job left: every later one moved up
    await shown.refresh_due(budget=5)
    assert [job_id for job_id, _ in sent] == [job_id(index) for index in (0, 2, 3, 4, 5)]
    assert "position **1**" in sent[1][1]

