"""A dependency-free terminal progress bar for the CLI (downloads and stylize runs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def bar(fraction: float, width: int = 20) -> str:
    """``█████░░░░░`` for a fraction in 0..1 (shared with the bot's status messages)."""
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


class ProgressBar:
    """Redraws one line on a TTY; elsewhere (logs, CI) prints a line every 10 %."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_decile = -1
        self.last_draw = 0.0

    def update(self, fraction: float, detail: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self.last_draw >= 0.1 or fraction >= 1:
                self.stream.write(f"\r{self.label} {bar(fraction)} {fraction:4.0%} {detail}\033[K")
                self.stream.flush()
                self.last_draw = now
        else:
            decile = int(fraction * 10)
            if decile > self.last_decile:
                self.stream.write(f"{self.label} {fraction:4.0%} {detail}\n")
                self.stream.flush()
                self.last_decile = decile

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
