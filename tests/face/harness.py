"""Running the real ``nst-bot run`` process against the Discord stand-in, and reading what it posted."""

from __future__ import annotations

import io
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

from tests.face.discord_standin import ALICE, StandinThread
from tests.conftest import make_content, make_style, png_bytes

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


DEFAULT_LIMITS = {"max_queue": 20, "max_jobs_per_user": 3, "cooldown_seconds": 0, "max_upload_bytes": 200_000,
                  "max_pixels": 4_000_000}


def write_config(directory: Path, standin: StandinThread, weights: Path, *, limits: dict[str, Any] | None = None,
                 discord: str = "", engine: str = "", extra: str = "") -> Path:
    """A config for the stand-in: tiny quality levels, the random weights, attachments from 127.0.0.1; ``extra``:
    more sections (e.g. [queue])."""
    config = directory / "config.toml"
    limit_lines = "\n".join(f"{key} = {value}" for key, value in {**DEFAULT_LIMITS, **(limits or {})}.items())
    config.write_text(f"""
[discord]
api_base = "{standin.api_base}"
gateway_url = "{standin.gateway_url}"
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
allowed_attachment_hosts = ["http://127.0.0.1:{standin.port}"]
{TINY_QUALITY}
{extra}
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


def assert_nothing_refused(standin: StandinThread) -> None:
    """The bot sent nothing the stand-in refused as Discord would (each refusal: the request and the errors)."""
    refused = [f"{r.method} {r.path}: {r.refusal}" for r in standin.records() if r.refusal]
    assert not refused, "the bot sent what Discord refuses:\n" + "\n".join(refused)


def decoded(standin: StandinThread, attachment: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(standin.attachment_bytes(attachment)))
    image.load()
    return image


# What a user does and sees (helpers for the end-to-end tests) -------------------------------------------

def images(standin: StandinThread) -> tuple[dict[str, Any], dict[str, Any]]:
    return (standin.attachment("photo.png", png_bytes(make_content())),
            standin.attachment("style.png", png_bytes(make_style())))


def stylize(standin: StandinThread, who: dict[str, Any] = ALICE, **options: Any) -> str:
    content, style = images(standin)
    options.setdefault("content", content)
    if "preset" not in options:
        options.setdefault("style", style)
    options = {key: value for key, value in options.items() if value is not None}
    return standin.command("stylize", options, who)


def original_text(standin: StandinThread, token: str) -> str:
    message = standin.original(token)
    return message["content"] if message else ""


def wait_original(standin: StandinThread, token: str, text: str, timeout: float = 30) -> str:
    """The reply once it says ``text``; on a timeout the error says what it said instead (a full-suite run once
    timed out here on a served /stylize, its reply unknown)."""
    try:
        return standin.wait_for(lambda: text in original_text(standin, token) and original_text(standin, token),
                                timeout, f"the command's reply to say {text!r}")
    except AssertionError as error:
        raise AssertionError(f"{error}; it says {original_text(standin, token)!r}") from None


def status_message(standin: StandinThread, token: str) -> dict[str, Any]:
    return standin.wait_for(lambda: next(iter(standin.followups(token)), None), 30, "the status message")


def result_message(standin: StandinThread, token: str, timeout: float = 90) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((m for m in standin.followups(token) if "here is your image" in m["content"]), None)
    return standin.wait_for(find, timeout, "the result message")


def custom_id(message: dict[str, Any], prefix: str) -> str:
    for row in message["components"]:
        for component in row["components"]:
            if component.get("custom_id", "").startswith(prefix):
                return component["custom_id"]
    raise AssertionError(f"no button {prefix!r} on message: {message['components']}")


def again_id(message: dict[str, Any], way: str) -> str:
    found = custom_id(message, "nst:again:")
    assert found.count(":") == 3
    return found.rsplit(":", 1)[0] + ":" + way


def callback(standin: StandinThread, token: str) -> dict[str, Any]:
    record = standin.wait_for(lambda: standin.records("callback", token), 10, "the interaction callback")[0]
    return record.payload


def wait_status(standin: StandinThread, message_id: int, text: str, timeout: float = 60) -> dict[str, Any]:
    return standin.wait_for(lambda: (m := standin.message(message_id)) and text in m["content"] and m,
                            timeout, f"status message {message_id} to say {text!r}")


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header and a tiny compressed body claiming ``width``×``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def job_id(status: dict[str, Any]) -> str:
    """The job id behind a status message (from its Cancel button)."""
    return custom_id(status, "nst:cancel:").split(":")[2]


def deliveries(standin: StandinThread, job: str) -> list[dict[str, Any]]:
    """Messages carrying this job's result (recognised by its Stronger / Weaker buttons)."""
    marker = f"nst:again:{job}:"
    return [m for m in standin.messages()
            if any(marker in c.get("custom_id", "") for row in m["components"] for c in row["components"])]


def wait_delivered(standin: StandinThread, job: str, timeout: float = 120) -> dict[str, Any]:
    return standin.wait_for(lambda: next(iter(deliveries(standin, job)), None), timeout, f"job {job} delivered")


def engine_pid(bot: BotProcess) -> int:
    return int(re.findall(r"engine process started \(pid (\d+)\)", bot.output())[-1])
