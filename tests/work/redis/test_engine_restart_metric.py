"""``nst_engine_restarts_total`` counts engines that died and were replaced, never the same engines seen again
after a Redis outage: the real bot with metrics on, scraped over HTTP."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.face.discord_standin import StandinThread
from tests.face.harness import TOKEN, BotProcess, engine_pid, write_config
from tests.work.redis.helpers import REDIS_SERVER, RedisServer, WorkerProcess, free_port, queue_section, scrape

pytestmark = pytest.mark.timeout(300)


def metrics_section(port: int) -> str:
    return f"[metrics]\nenabled = true\nport = {port}\n"


def restarts(port: int) -> float:
    return scrape(port)["nst_engine_restarts_total"]


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (.ci/run installs it)")
def test_a_redis_outage_is_no_restart_but_a_worker_replaced_under_its_name_is(tmp_path: Path, vgg_weights: Path):
    server = RedisServer(tmp_path / "redis").start()
    worker = WorkerProcess(tmp_path / "worker", server.url, vgg_weights).start()
    port = free_port()
    with StandinThread() as standin:
        config = write_config(tmp_path, standin, tmp_path / "no-weights-here.pth",
                              extra=queue_section(server.url) + metrics_section(port))
        bot = BotProcess(config, tmp_path / "bot.log").start()
        try:
            bot.wait_ready()
            server.kill()
            bot.wait_until("is unreachable")
            server.start()
            bot.wait_until("is reachable again", timeout=60)
            standin.wait_for(lambda: bot.output().count(f"worker {worker.name} connected") == 2, 30,
                             "the worker announced again")
            assert restarts(port) == 0

            # A restarted container keeps its host name and pid, so its new worker has the old one's name; here
            # the worker is killed and its heartbeat written again under its name with a later start time.
            heartbeat = json.loads(server_get(server, f"nst:worker:{worker.name}"))
            worker.stop(signal.SIGKILL)
            standin.wait_for(lambda: scrape(port)["nst_workers_connected"] == 0, 30, "the worker's heartbeat expired")
            with redis.Redis.from_url(server.url) as client:
                client.set(f"nst:worker:{worker.name}", json.dumps({**heartbeat, "started": time.time()}), ex=60)
            bot.wait_until(f"worker {worker.name} restarted", timeout=30)
            standin.wait_for(lambda: restarts(port) == 1, 10, "the restart counted")
        finally:
            bot.stop()
            worker.stop(signal.SIGKILL)
            server.kill()


def test_a_local_engine_that_died_and_came_back_counts_once(tmp_path: Path, vgg_weights: Path):
    port = free_port()
    with StandinThread() as standin:
        bot = BotProcess(write_config(tmp_path, standin, vgg_weights, extra=metrics_section(port)),
                         tmp_path / "bot.log").start()
        try:
            bot.wait_ready()
            assert restarts(port) == 0
            os.kill(engine_pid(bot), signal.SIGKILL)
            standin.wait_for(lambda: bot.output().count("engine ready") == 2, 120, "the engine started again")
            standin.wait_for(lambda: restarts(port) == 1, 10, "the restart counted")
        finally:
            bot.stop()


def server_get(server: RedisServer, key: str) -> bytes:
    with redis.Redis.from_url(server.url) as client:
        return client.get(key)


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6, in hex)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_metrics_endpoint_listens_on_loopback_only_and_shows_no_secret(tmp_path: Path, vgg_weights: Path):
    port, password = free_port(), "redis-secret-that-must-not-leak"
    with StandinThread() as standin:
        config = write_config(tmp_path, standin, vgg_weights,
                              extra=queue_section(f"redis://127.0.0.1:{free_port()}/0") + metrics_section(port))
        bot = BotProcess(config, tmp_path / "bot.log", env={"NST_REDIS_PASSWORD": password}).start()
        try:
            bot.wait_until("metrics on http://127.0.0.1")
            assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            assert "nst_queue_length" in text
            for secret in (TOKEN, password, "redis://", str(tmp_path)):
                assert secret not in text
        finally:
            bot.stop()
