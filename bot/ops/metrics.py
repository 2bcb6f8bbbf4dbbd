"""Operator metrics in Prometheus' text format, served only when ``[metrics] enabled = true``.

The job core records what happens through :class:`Metrics`; gauges that are cheaper to read than to track (queue
length, connected workers) are read at scrape time from callables it registers with :meth:`Metrics.watch`.
The endpoint binds to ``[metrics] host`` (loopback unless the admin opens it) on ``[metrics] port``.
"""

from __future__ import annotations

import logging
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from bot.config import MetricsConfig

log = logging.getLogger(__name__)

OUTCOMES = ("done", "failed", "cancelled", "lost", "timed_out")
# Seconds: tiny jobs on a GPU take a few seconds, large ones on a CPU many minutes.
JOB_SECONDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)


class Metrics:
    """What the bot records; one instance per process, with its own registry (tests may build several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("nst_jobs", "Jobs that ended, by outcome", ["outcome"], registry=self.registry)
        self.run_seconds = Histogram("nst_job_run_seconds", "Time a job spent running on an engine",
                                     buckets=JOB_SECONDS, registry=self.registry)
        self.wait_seconds = Histogram("nst_job_wait_seconds", "Time a job waited in the queue before it started",
                                      buckets=JOB_SECONDS, registry=self.registry)
        self.engine_restarts = Counter("nst_engine_restarts", "Engine processes restarted after they died",
                                       registry=self.registry)
        self.queue_length = Gauge("nst_queue_length", "Jobs waiting or running", registry=self.registry)
        self.workers = Gauge("nst_workers_connected", "Engines connected (local process or Redis workers)",
                             registry=self.registry)
        self.late_interactions = Counter("nst_interactions_too_late", "Interactions answered after Discord's "
                                         "3-second window (refused: Unknown interaction)", registry=self.registry)
        for outcome in OUTCOMES:  # present from the start, so rates work before the first job of each kind
            self.jobs.labels(outcome)

    def watch(self, queue_length: Callable[[], float], workers: Callable[[], float]) -> None:
        """Read these at each scrape (e.g. the core's queue size and ``WorkQueue.workers``)."""
        self.queue_length.set_function(queue_length)
        self.workers.set_function(workers)

    def job_started(self, waited: float) -> None:
        self.wait_seconds.observe(waited)

    def job_ended(self, outcome: str, ran: float | None = None) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
        self.jobs.labels(outcome).inc()
        if ran is not None:
            self.run_seconds.observe(ran)

    def engine_restarted(self) -> None:
        self.engine_restarts.inc()

    def interaction_too_late(self) -> None:
        self.late_interactions.inc()

    def serve(self, config: MetricsConfig) -> None:
        """Start the HTTP endpoint (a daemon thread) when enabled; an unusable address is one clear error."""
        if not config.enabled:
            return
        try:
            start_http_server(config.port, addr=config.host, registry=self.registry)
        except OSError as error:
            raise OSError(f"cannot serve metrics on {config.host}:{config.port}: {error.strerror}") from None
        log.info("metrics on http://%s:%d/metrics", config.host, config.port)
