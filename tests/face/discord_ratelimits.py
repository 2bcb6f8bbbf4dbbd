"""Discord's rate limits as the stand-in applies them: a bucket per route (editing one message: 5 per 5 s), a
global 50 requests per second that interaction endpoints are exempt from, the ``X-RateLimit-*`` headers on every
answer and a 429 with ``retry_after`` once a bucket is spent (https://discord.com/developers/docs/topics/rate-limits).

Windows are fixed, starting with a bucket's first request, as the headers describe them (``Reset-After``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

EDITS_PER_MESSAGE = (5, 5.0)  # requests, seconds
OTHER_ROUTES = (50, 1.0)
GLOBAL = (50, 1.0)
# Interaction endpoints are not bound to the bot's global limit: callbacks, and follow-ups and edits through the
# interaction's token (webhook routes, which carry no bot token).
NOT_GLOBAL = ("/api/v10/interactions/", "/api/v10/webhooks/")


@dataclass
class Window:
    limit: int
    period: float
    started: float = 0.0
    used: int = 0

    def take(self, now: float) -> float:
        """Count one request; 0 when it may go ahead, else the seconds until the window resets."""
        if now >= self.started + self.period:
            self.started, self.used = now, 0
        if self.used >= self.limit:
            return self.started + self.period - now
        self.used += 1
        return 0.0

    def headers(self, bucket: str, now: float) -> dict[str, str]:
        reset_after = max(0.0, self.started + self.period - now)
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.limit - self.used),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket}


@dataclass
class RateLimits:
    """The buckets the stand-in has handed out, each answer that spent one (``X-RateLimit-Remaining: 0``; by path)
    and every 429 it answered (``(path, scope)``)."""

    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, Window] = field(default_factory=dict)
    global_window: Window = field(default_factory=lambda: Window(*GLOBAL))
    spent: list[str] = field(default_factory=list)
    limited: list[tuple[str, str]] = field(default_factory=list)

    @staticmethod
    def route(method: str, path: str) -> tuple[str, tuple[int, float]]:
        """The bucket a request counts against: edits of one message share one; other routes one per path."""
        if method == "PATCH" and "/messages/" in path:  # the path names the message (through its token for @original)
            return f"edit:{path}", EDITS_PER_MESSAGE
        return f"{method}:{path}", OTHER_ROUTES

    def check(self, method: str, path: str) -> tuple[web.Response | None, dict[str, str]]:
        """Count a request: a 429 to answer instead (or None), and the headers for the answer."""
        now = self.clock()
        key, (limit, period) = self.route(method, path)
        bucket = hashlib.sha1(key.encode()).hexdigest()[:16]
        window = self.buckets.setdefault(key, Window(limit, period))
        if not path.startswith(NOT_GLOBAL):
            wait = self.global_window.take(now)
            if wait:
                return self.too_many(path, "global", wait, {"X-RateLimit-Global": "true"}), {}
        wait = window.take(now)
        headers = window.headers(bucket, now)
        if wait:
            return self.too_many(path, "user", wait, headers), headers
        if window.used == window.limit:
            self.spent.append(path)
        return None, headers

    def too_many(self, path: str, scope: str, wait: float, headers: dict[str, str]) -> web.Response:
        self.limited.append((path, scope))
        body = {"message": "You are being rate limited.", "retry_after": round(wait, 3), "global": scope == "global"}
        return web.Response(body=json.dumps(body).encode(), status=429, content_type="application/json",
                            headers={**headers, "Retry-After": str(math.ceil(wait)), "X-RateLimit-Scope": scope,
                                     "Via": "1.1 google"})
