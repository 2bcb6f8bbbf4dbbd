"""Secrets never reach the bot's log, even inside tracebacks: the real ``configure_logging`` in a fresh Python
process, logging exceptions whose message, quoted source lines and stack carry the token and a password."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from bot.logs import LOG_FORMAT, RedactingFormatter, environment_secrets
from tests.conftest import REPO

TOKEN = "MTIzNDU2Nzg5.leaky-token.abcdefXYZ"
REDIS_PASSWORD = "redis-pass-9f8e7d"
FILE_SECRET = "secret-from-a-file-42"

# Written to a file and run, so the traceback quotes these lines, token and all.
SCRIPT = f"""
import logging, os
from bot.logs import configure_logging

configure_logging(os.environ["DISCORD_TOKEN"])
log = logging.getLogger("nst-bot")

def connect():
    raise ConnectionError("gateway refused {TOKEN} (sent as 'Bot {TOKEN}')")

def login():
    try:
        connect()
    except ConnectionError as error:
        raise RuntimeError("login failed for redis://worker:{REDIS_PASSWORD}@queue:6379/0") from error

try:
    login()
except RuntimeError:
    log.exception("could not start with token {TOKEN}")
log.warning("where am I? %s", "{FILE_SECRET}", stack_info=True)
log.info("queue at %s", "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/1")
print("done")
"""


def test_tracebacks_stacks_and_messages_are_scrubbed_through_the_real_setup(tmp_path: Path) -> None:
    script = tmp_path / "leaky.py"
    script.write_text(SCRIPT)
    secret_file = tmp_path / "redis-password"
    secret_file.write_text(FILE_SECRET + "\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "DISCORD_TOKEN": TOKEN,
           "NST_REDIS_PASSWORD": REDIS_PASSWORD, "NST_REDIS_PASSWORD_FILE": str(secret_file)}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "done", run.stderr
    log = run.stderr

    for secret in (TOKEN, REDIS_PASSWORD, FILE_SECRET):
        assert secret not in log
    # The traceback is still all there, only scrubbed: both exceptions, the quoted lines, the stack.
    assert "Traceback (most recent call last)" in log and "Stack (most recent call last)" in log
    assert "ConnectionError: gateway refused [redacted] (sent as 'Bot [redacted]')" in log
    assert "The above exception was the direct cause of the following exception" in log
    assert 'raise ConnectionError("gateway refused [redacted]' in log  # the quoted source line
    assert "RuntimeError: login failed for redis://worker:[redacted]@queue:6379/0" in log
    assert "ERROR   nst-bot: could not start with token [redacted]" in log
    assert "where am I? [redacted]" in log and "queue at redis://:[redacted]@127.0.0.1:6379/1" in log


def test_a_cached_traceback_is_left_scrubbed_for_other_handlers() -> None:
    formatter = RedactingFormatter(LOG_FORMAT, [TOKEN])
    try:
        raise ValueError(f"bad {TOKEN}")
    except ValueError:
        record = logging.LogRecord("nst-bot", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert TOKEN not in formatter.format(record)
    assert record.exc_text and "ValueError: bad [redacted]" in record.exc_text
    assert logging.Formatter(LOG_FORMAT).format(record).count("[redacted]") == 1  # a plain handler reuses it


def test_secrets_come_from_variables_named_like_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-the-file\n")
    found = environment_secrets({"DISCORD_TOKEN": " tok-en ", "REDIS_PASSWORD": "pw-1", "API_SECRET": "s3cr3t",
                                 "DISCORD_TOKEN_FILE": str(secret_file), "MISSING_PASSWORD_FILE": "/nonexistent",
                                 "HOME": "/root", "NST_CONFIG": "config.toml"})
    assert sorted(found) == ["from-the-file", "pw-1", "s3cr3t", "tok-en"]
    formatter = RedactingFormatter("%(message)s", ["abc", "tok-en"])  # too short to be a secret: left alone
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "abc tok-en", None, None)
    assert formatter.format(record) == "abc [redacted]"
