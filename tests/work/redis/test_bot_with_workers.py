"""The real bot with ``[queue] backend = "redis"``: jobs run on a real ``nst-bot worker`` through a real
``redis-server``, and Discord is the loopback stand-in. The bot loads no weights of its own here."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
import redis as redis_client

from tests.face.discord_standin import ALICE, BOB, CAROL, StandinThread
from tests.face.harness import (BotProcess, callback, custom_id, decoded, deliveries, result_message, status_message,
                               stylize, wait_original, write_config)
from tests.work.redis.helpers import REDIS_SERVER, RedisServer, WorkerProcess, queue_section

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (.ci/run installs it)")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, vgg_weights: Path):
    directory = tmp_path_factory.mktemp("bot-with-workers")
    redis = RedisServer(directory / "redis").start()
    worker = WorkerProcess(directory / "worker", redis.url, vgg_weights).start()
    with StandinThread() as standin:
        config = write_config(directory, standin, directory / "no-weights-here.pth", extra=queue_section(redis.url))
        bot = BotProcess(config, directory / "bot.log").start().wait_ready()
        yield bot, standin, redis, worker
        bot.stop()
    worker.stop()
    redis.kill()


def test_a_job_runs_on_a_worker_and_is_posted_once(setup) -> None:
    bot, standin, _, _ = setup
    token = stylize(standin, ALICE, quality="fast")
    result = result_message(standin, token)
    posted = decoded(standin, result["attachments"][0])
    assert posted.size == (48, 32)
    # The recipe the worker wrote crossed Redis and the bot's delivery with the picture.
    assert json.loads(posted.info["nst-bot"])["quality"] == "fast"
    assert len(deliveries(standin, custom_id(result, "nst:again:").split(":")[2])) == 1
    listing = callback(standin, standin.command("queue", {}, BOB))["data"]["content"]
    assert "1 engine connected" in listing


def test_redis_down_is_a_clear_reply_and_the_bot_recovers(setup) -> None:
    bot, standin, redis, _ = setup
    redis.kill()
    refused = stylize(standin, BOB, quality="fast")
    assert "temporarily unavailable" in wait_original(standin, refused, "⚠️", timeout=60)
    assert "Traceback" not in bot.output()
    redis.start()  # same port and AOF folder
    bot.wait_until("is reachable again", timeout=120)
    token = stylize(standin, CAROL, quality="fast")
    assert decoded(standin, result_message(standin, token, timeout=180)["attachments"][0]).size == (48, 32)


@pytest.mark.slow
def test_a_sigkilled_workers_job_runs_again_and_is_posted_once(setup, tmp_path: Path, vgg_weights: Path) -> None:
    bot, standin, redis, first = setup
    second = WorkerProcess(tmp_path / "second", redis.url, vgg_weights).start()
    workers = {worker.name: worker for worker in (first, second)}
    try:
        bot.wait_until(f"worker {second.name} connected", timeout=120)
        token = stylize(standin, ALICE, quality="slow")
        holder = standin.wait_for(lambda: job_holder(redis), 60, "a worker to take the job")
        standin.wait_for(lambda: "%" in status_message(standin, token)["content"], 60, "the job's progress")
        workers[holder].stop(signal.SIGKILL)

        result = result_message(standin, token, timeout=240)
        assert decoded(standin, result["attachments"][0]).size == (64, 43)
        log = bot.output()
        assert f"its worker {holder} stopped responding" in log and "retrying it" in log
        time.sleep(3)  # anything posted late would show now
        assert len(deliveries(standin, custom_id(result, "nst:again:").split(":")[2])) == 1
    finally:
        second.stop(signal.SIGKILL)


def job_holder(server: RedisServer) -> str | None:
    """The worker holding the one job handed over (from the consumer group's pending list), if any."""
    with redis_client.Redis.from_url(server.url) as client:
        pending = client.xpending_range("nst:jobs", "workers", min="-", max="+", count=10)
    return pending[0]["consumer"].decode() if pending else None


@pytest.mark.slow  # starts Redis late and runs a job: about 10-20 s on a 2-core AVX2 EPYC
def test_a_bot_started_before_redis_refuses_then_serves(tmp_path: Path, vgg_weights: Path) -> None:
    redis = RedisServer(tmp_path / "redis")  # its port is chosen; it starts once the bot runs
    worker = WorkerProcess(tmp_path / "worker", redis.url, vgg_weights)
    with StandinThread() as standin:
        config = write_config(tmp_path, standin, tmp_path / "no-weights-here.pth", extra=queue_section(redis.url))
        bot = BotProcess(config, tmp_path / "bot.log").start()
        try:
            bot.wait_until("connected as")
            assert f"Redis at 127.0.0.1:{redis.port}/0 is unreachable" in bot.output()
            refused = stylize(standin, ALICE, quality="fast")
            assert "temporarily unavailable" in wait_original(standin, refused, "⚠️", timeout=60)

            redis.start()
            worker.start()
            bot.wait_until("engine ready", timeout=120)
            token = stylize(standin, BOB, quality="fast")
            assert decoded(standin, result_message(standin, token, timeout=180)["attachments"][0]).size == (48, 32)
            assert "Traceback" not in bot.output()
        finally:
            assert bot.stop() == 0
            worker.stop()
            redis.kill()


def test_redis_credentials_that_cannot_work_stop_the_bot_with_one_line(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", "--requirepass", "the-right-one").start()
    try:
        with StandinThread() as standin:
            config = write_config(tmp_path, standin, tmp_path / "no-weights-here.pth",
                                  extra=queue_section(redis.url))
            for env, expected in (
                    ({"NST_REDIS_PASSWORD_FILE": str(tmp_path / "missing")},
                     re.escape(f"nst-bot: error: Cannot read NST_REDIS_PASSWORD_FILE '{tmp_path / 'missing'}': "
                               "No such file or directory.")),
                    ({"NST_REDIS_PASSWORD": "a-wrong-one"},  # the reason in brackets is redis-server's own words
                     re.escape(f"nst-bot: error: The engine could not start: Redis at 127.0.0.1:{redis.port}/0 "
                               "refused the connection (") + r".+\); check NST_REDIS_PASSWORD or "
                     r"NST_REDIS_PASSWORD_FILE\.")):
                bot = BotProcess(config, tmp_path / "bot.log", env={"NST_REDIS_PASSWORD": "", **env}).start()
                assert bot.process.wait(60) == 2
                output = bot.output()[bot.log_start:]
                assert any(re.fullmatch(expected, line) for line in output.splitlines()), output
                assert "Traceback" not in output and "a-wrong-one" not in output
    finally:
        redis.kill()
