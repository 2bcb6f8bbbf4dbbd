"""The text of a job's public status message: what was asked, then queued, progress, stopping, or the outcome."""

from __future__ import annotations

import discord

from bot.jobs.model import CANCELLED, DONE, FAILED, QUEUED, ActiveJob, Job
from bot.ops.terminal import bar, format_seconds

from .replies import fit

OUTCOME_ICONS = {DONE: "✅", FAILED: "❌", CANCELLED: "🛑"}


def header(job: Job) -> str:
    """Who asked for what: the first line(s) of every status of the job."""
    options = job.options
    strength = f" · strength {options.strength:g}" if options.strength != 1 else ""
    colors = f" · colours: {options.preserve_colors}" if options.preserve_colors != "none" else ""
    notes = "".join(f"\n-# {note}" for note in job.notes)
    frames = f", {job.frames} frames" if job.animated else ""
    return (f"**{discord.utils.escape_markdown(job.user_name)}** · {job.style_label} · {job.quality} "
            f"({options.size} px, {options.iterations} iterations{frames}){strength}{colors}{notes}")


def stopping(job: Job, by: str) -> str:
    return fit(f"{header(job)}\n🛑 Stopping… (asked by {by})")


def live_status(active: ActiveJob, position: int, eta_until_start: float | None) -> str:
    """The status of an active job: its place in the queue, or a progress bar."""
    job = active.job
    if job.state == QUEUED:
        starts = f" · starts in about {format_seconds(eta_until_start)}" if eta_until_start is not None else ""
        return fit(f"{header(job)}\n⏳ Queued — position **{position}**{starts}")
    if active.stopping_by:
        return stopping(job, active.stopping_by)
    total = active.total or job.options.iterations
    eta = f" · ETA {format_seconds(active.eta)}" if active.eta is not None else ""
    step = (f"frame {active.frame} of {active.frames}" if active.frames > 1 else
            f"iteration {active.iteration}/{total}")
    return fit(f"{header(job)}\n🎨 `{bar(active.fraction, 16)}` {active.fraction:4.0%} · {step}{eta}")


def final_status(job: Job) -> str:
    return fit(f"{header(job)}\n{OUTCOME_ICONS[job.state]} {job.error or 'Done'}")
