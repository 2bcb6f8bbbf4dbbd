"""Logging for the bot process: one stderr handler whose formatter scrubs secrets from every line it writes.

Secrets are never logged on purpose; this is the safety net for a library, an exception message or a traceback
that would. The whole formatted text is scrubbed (message, traceback, stack), so a token inside an exception's
message, or in a source line a traceback quotes, never reaches the log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
REDACTED = "[redacted]"
SECRET_VARIABLE = re.compile(r"(TOKEN|PASSWORD|SECRET)$", re.IGNORECASE)  # e.g. DISCORD_TOKEN, REDIS_PASSWORD
URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^:@/\s]*:)[^@/\s]+@", re.IGNORECASE)
SHORTEST_SECRET = 4  # shorter values would garble ordinary words and protect nothing


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces each secret, and any password inside a URL, with ``[redacted]``."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= SHORTEST_SECRET}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return URL_PASSWORD.sub(rf"\g<keep>{REDACTED}@", text)

    def format(self, record: logging.LogRecord) -> str:
        text = self.redact(super().format(record))
        if record.exc_text:  # format() caches the traceback on the record, where another handler would reuse it
            record.exc_text = self.redact(record.exc_text)
        return text


def environment_secrets(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Values of variables named like secrets (``…TOKEN``, ``…PASSWORD``, ``…SECRET``), and the contents of the
    files their ``…_FILE`` variants name (Docker secrets)."""
    found = []
    for name, value in environ.items():
        if SECRET_VARIABLE.search(name):
            found.append(value.strip())
        elif name.upper().endswith("_FILE") and SECRET_VARIABLE.search(name[:-len("_FILE")]):
            try:
                found.append(Path(value).read_text(encoding="utf-8").strip())
            except (OSError, UnicodeDecodeError):
                continue  # the part of the bot that needs this file reports it
    return found


def configure_logging(*secrets: str, level: str = "info") -> None:
    """Log to stderr at ``level`` ([bot] log_level), scrubbing ``secrets`` and every secret in the environment."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, [*secrets, *environment_secrets()]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
