"""The real bot with ``[queue] backend = "redis"``: jobs run on a real ``nst-bot worker`` through a real
``redis-server``, and Discord is the loopback stand-in. The bot loads no weights of its own here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.discord_standin import ALICE, BOB, CAROL, StandinThread
from tests.bot.harness import (BotProcess, callback, custom_id, decoded, deliveries, result_message, stylize,
                               wait_original, write_config)
from tests.redis.helpers import REDIS_SERVER, RedisServer, WorkerProcess

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (.ci/run installs it)")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, vgg_weights: Path):
    directory = tmp_path_factory.mktemp("bot-with-workers")
    redis = RedisServer(directory / "redis").start()
    worker = WorkerProcess(directory / "worker", redis.url, vgg_weights).start()
    with StandinThread() as standin:
        queue = f'[queue]\nbackend = "redis"\nredis_url = "{redis.url}"\nlost_after = 3\n'
        config = write_config(directory, standin, directory / "no-weights-here.pth", extra=queue)
        bot = BotProcess(config, directory / "bot.log").start().wait_ready()
        yield bot, standin, redis
        bot.stop()
    worker.stop()
    redis.kill()


def test_a_job_runs_on_a_worker_and_is_posted_once(setup) -> None:
    bot, standin, _ = setup
    token = stylize(standin, ALICE, quality="fast")
    result = result_message(standin, token)
    assert decoded(standin, result["attachments"][0]).size == (48, 32)
    assert len(deliveries(standin, custom_id(result, "nst:again:").split(":")[2])) == 1
    listing = callback(standin, standin.command("queue", {}, BOB))["data"]["content"]
    assert "1 engine connected" in listing


def test_redis_down_is_a_clear_reply_and_the_bot_recovers(setup) -> None:
    bot, standin, redis = setup
    redis.kill()
    refused = stylize(standin, BOB, quality="fast")
    assert "temporarily unavailable" in wait_original(standin, refused, "⚠️", timeout=60)
    assert "Traceback" not in bot.output()
    redis.start()  # same port and AOF folder
    bot.wait_until("is reachable again", timeout=120)
    token = stylize(standin, CAROL, quality="fast")
    assert decoded(standin, result_message(standin, token, timeout=180)["attachments"][0]).size == (48, 32)
