"""Fixtures for the Redis work-queue tests: a real ``redis-server`` (Debian package, installed by .ci/run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.work.redis.helpers import REDIS_SERVER, RedisServer


@pytest.fixture()
def redis_server(tmp_path: Path) -> RedisServer:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()
