"""The text of a result's 📋 Info reply: what it was made with, when, and on what."""

from __future__ import annotations

from bot.jobs.model import Job
from bot.ops.terminal import format_seconds


def after(start: float | None, end: float | None) -> str:
    return format_seconds(end - start) if start is not None and end is not None else "--"


def result_info(job: Job) -> str:
    """Options, timings (Discord renders ``<t:…:T>`` in each member's own time zone) and device of a job."""
    options = job.options
    lines = [
        f"📋 **Image `{job.id}`** — {job.style_label}, asked by {job.user_name}",
        f"**Quality** {job.quality} · **size** {options.size} px · **iterations** {options.iterations} · "
        f"**strength** {options.strength:g} · **colours** {options.preserve_colors} · **seed** {options.seed}",
        f"**Queued** <t:{int(job.created)}:T> · **waited** {after(job.created, job.started)} · "
        f"**ran** {after(job.started, job.finished)}",
        f"**Device** {job.device or 'not recorded'}",
    ]
    if job.parent_id:
        lines.append(f"A re-run of image `{job.parent_id}`.")
    return "\n".join(lines)
