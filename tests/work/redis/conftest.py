"""Fixtures for the Redis work-queue tests: a real ``redis-server`` (Debian package, installed by .ci/run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.work.redis_queue import RedisWorkQueue
from tests.work.redis.helpers import REDIS_SERVER, RedisServer, queue_config


@pytest.fixture()
def redis_server(tmp_path: Path) -> RedisServer:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture()
async def queue(redis_server: RedisServer):
    """The bot's Redis backend, started against ``redis_server``; closed after the test."""
    backend = RedisWorkQueue(queue_config(redis_server.url))
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture()
def servers(tmp_path: Path):
    """Makes redis-servers in their own folders (not started); kills them after the test."""
    made: list[RedisServer] = []

    def make(name: str, *extra: str) -> RedisServer:
        made.append(RedisServer(tmp_path / name, *extra))
        return made[-1]
    yield make
    for server in made:
        server.kill()
