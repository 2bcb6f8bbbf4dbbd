"""Running the real ``nst-bot run`` process against the Discord stand-in, and reading what it posted."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from tests.bot.discord_standin import StandinThread

TOKEN = "test-token-abc.DEF.123"  # a fake bot token; tests check it never reaches logs or messages

TINY_QUALITY = """
[quality.fast]
size = 48
iterations = 4
description = "tiny test level"

[quality.standard]
size = 64
iterations = 6
description = "small test level"

[quality.medium]
size = 64
iterations = 40
description = "a few seconds"

[quality.slow]
size = 64
iterations = 400
description = "long enough to cancel"
"""


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


DEFAULT_LIMITS = {"max_queue": 20, "max_jobs_per_user": 3, "cooldown_seconds": 0, "max_upload_bytes": 200_000,
                  "max_pixels": 4_000_000}


def write_config(directory: Path, standin: StandinThread, weights: Path, *, limits: dict[str, Any] | None = None,
                 discord: str = "", engine: str = "") -> Path:
    """A config for the stand-in: tiny quality levels, the random weights, attachments from 127.0.0.1."""
    config = directory / "config.toml"
    limit_lines = "\n".join(f"{key} = {value}" for key, value in {**DEFAULT_LIMITS, **(limits or {})}.items())
    config.write_text(f"""
[discord]
api_base = "{standin.api_base}"
gateway_url = "{standin.gateway_url}"
guild_ids = []
{discord}

[engine]
weights = "{weights}"
device = "cpu"
{engine}

[storage]
data_dir = "{directory / 'data'}"

[limits]
{limit_lines}

[bot]
progress_interval = 0.5
default_quality = "standard"
allowed_attachment_hosts = ["127.0.0.1"]
{TINY_QUALITY}
""")
    return config


class BotProcess:
    """``nst-bot run --config PATH`` as a subprocess, its output in a log file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self.env = {**os.environ, "DISCORD_TOKEN": TOKEN, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                    **(env or {})}
        self.process: subprocess.Popen | None = None
        self.log_start = 0  # where this run's output begins in the (appended) log

    def start(self) -> "BotProcess":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log_start = len(self.output())
        stream = self.log.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(self.config)],
                                        stdout=stream, stderr=subprocess.STDOUT, env=self.env)
        stream.close()
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_until(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output()[self.log_start:]:
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the bot exited ({self.process.returncode}):\n{self.output()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"the bot never logged {text!r}:\n{self.output()[-3000:]}")

    def wait_ready(self) -> "BotProcess":
        self.wait_until("connected as")
        self.wait_until("engine ready")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def decoded(standin: StandinThread, attachment: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(standin.attachment_bytes(attachment)))
    image.load()
    return image
