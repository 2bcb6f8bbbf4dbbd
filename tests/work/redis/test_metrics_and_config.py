"""The metrics endpoint over real HTTP, the [queue] / [metrics] config keys, and the worker command's errors."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bot.config import ConfigError, MetricsConfig, load_config, redis_password
from bot.ops.metrics import Metrics
from tests.conftest import REPO
from tests.work.redis.helpers import free_port, scrape


def test_metrics_endpoint_reports_what_the_core_records():
    metrics, port = Metrics(), free_port()
    waiting = [3]
    metrics.watch(queue_length=lambda: waiting[0], workers=lambda: 2)
    metrics.serve(MetricsConfig(enabled=True, host="127.0.0.1", port=port))
    metrics.job_started(waited=4.0)
    metrics.job_ended("done", ran=12.0)
    metrics.job_ended("lost")
    metrics.engine_restarted()
    waiting[0] = 1

    values = scrape(port)

    assert values['nst_jobs_total{outcome="done"}'] == 1 and values['nst_jobs_total{outcome="lost"}'] == 1
    assert values['nst_jobs_total{outcome="failed"}'] == 0
    assert values['nst_job_run_seconds_bucket{le="20.0"}'] == 1 and values['nst_job_run_seconds_bucket{le="10.0"}'] == 0
    assert values["nst_job_wait_seconds_sum"] == 4.0
    assert values["nst_engine_restarts_total"] == 1
    assert values["nst_queue_length"] == 1 and values["nst_workers_connected"] == 2
    with pytest.raises(ValueError, match="unknown outcome"):
        metrics.job_ended("exploded")


def test_metrics_stay_off_unless_enabled():
    port = free_port()
    Metrics().serve(MetricsConfig(enabled=False, port=port))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_queue_config_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = load_config(write(tmp_path, '[queue]\nbackend = "redis"\nredis_url = "rediss://redis.example:6380/2"\n'
                                         '[metrics]\nenabled = true\n'))
    assert config.queue.backend == "redis" and config.queue.lost_after == 30.0
    assert config.metrics.enabled and config.metrics.host == "127.0.0.1"
    assert load_config(write(tmp_path, "")).queue.backend == "local"
    with pytest.raises(ConfigError, match="must not hold a password"):
        load_config(write(tmp_path, '[queue]\nredis_url = "redis://:hunter2@redis:6379/0"\n'))
    for malformed in ("redis://redis:port/0", "redis://redis:99999/0", "redis://redis:6379/zero", "redis:///0",
                      "http://redis:6379/0"):
        with pytest.raises(ConfigError, match="redis_url must look like redis://host:port/db"):
            load_config(write(tmp_path, f'[queue]\nredis_url = "{malformed}"\n'))
    with pytest.raises(ConfigError, match="needs \\[queue\\] redis_url"):
        load_config(write(tmp_path, '[queue]\nbackend = "redis"\n'))
    with pytest.raises(ConfigError, match="backend must be one of"):
        load_config(write(tmp_path, '[queue]\nbackend = "celery"\n'))
    monkeypatch.delenv("NST_REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("NST_REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="Cannot read NST_REDIS_PASSWORD_FILE"):
        redis_password()
    monkeypatch.setenv("NST_REDIS_PASSWORD", "from-env")
    assert redis_password() == "from-env"


def run_worker_command(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NST_CACHE_DIR": str(config.parent / "cache")}
    env.pop("NST_WEIGHTS", None)
    return subprocess.run([sys.executable, "-m", "bot", "worker", "--config", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_worker_command_errors_are_one_line(tmp_path: Path):
    no_url = run_worker_command(write(tmp_path, '[engine]\ndevice = "cpu"\n'))
    assert no_url.returncode == 2
    assert no_url.stderr.strip() == ("nst-bot: error: `nst-bot worker` needs [queue] redis_url "
                                     "(redis://host:port/db) in the config.")

    no_weights = run_worker_command(write(tmp_path, '[queue]\nredis_url = "redis://127.0.0.1:1/0"\n'))
    assert no_weights.returncode == 2
    assert "fetch-assets" in no_weights.stderr and "Traceback" not in no_weights.stderr
