"""The engine in its own OS process: torch lives only there, so a running job never stalls the bot's event loop.

Protocol (pickled dicts over two one-way pipes):
- bot → worker: ``{"op": "run", "jobs": [JobSpec, ...]}`` (one job, or a batch of compatible jobs that the
  engine optimises together), ``{"op": "cancel", "job": id}``, ``{"op": "stop"}``.
- worker → bot: ``ready`` (device), ``progress`` (iteration, total, eta, optional preview PNG bytes),
  ``done`` (result file, iterations, elapsed, cancelled, batch size), ``failed`` (a user-facing sentence), ``fatal``
  (the engine could not start, e.g. no weights).

The worker checks its inbox before every optimiser iteration, so a cancel stops a job within one iteration.
If the bot dies, the worker reads end-of-file and exits.
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import os
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

# The worker yields the CPU to the bot's event loop when both want it (they often share a few cores).
ENGINE_NICENESS = 5


@dataclass(frozen=True)
class JobSpec:
    """What the worker needs for one job: input files on disk, options as a plain dict, where to write."""

    job_id: str
    content: str
    styles: tuple[str, ...]
    options: dict[str, Any]
    result: str


# ---------------------------------------------------------------------------------------------- worker side


class _Inbox:
    """The worker's view of the bot → worker pipe: cancels are noted while a job runs, other messages kept."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cancelled: set[str] = set()
        self.pending: list[dict[str, Any]] = []
        self.closed = False

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("op") == "cancel":
            self.cancelled.add(message["job"])
        else:
            self.pending.append(message)

    def drain(self) -> None:
        try:
            while not self.closed and self.conn.poll():
                self._take(self.conn.recv())
        except (EOFError, OSError):
            self.closed = True

    def next(self) -> dict[str, Any]:
        while not self.pending:
            try:
                self._take(self.conn.recv())
            except (EOFError, OSError):
                return {"op": "stop"}
        return self.pending.pop(0)

    def should_stop(self, job_id: str) -> bool:
        self.drain()
        return self.closed or job_id in self.cancelled


def worker_main(inbox_conn: Connection, outbox: Connection, weights: str | None, configured: str | None) -> None:
    """Entry point of the engine process: load VGG19 once, then run jobs until told to stop."""
    try:
        os.nice(ENGINE_NICENESS)
    except OSError:
        pass
    from nst_engine.errors import NSTError
    from nst_engine.transfer import Engine

    try:
        engine = Engine(weights, configured=configured)
    except NSTError as error:
        outbox.send({"event": "fatal", "message": str(error)})
        return
    inbox = _Inbox(inbox_conn)
    try:
        outbox.send({"event": "ready", "device": _device_name()})
        while True:
            message = inbox.next()
            if message["op"] == "stop":
                return
            _run_jobs(engine, message["jobs"], inbox, outbox)
            inbox.cancelled.difference_update(spec.job_id for spec in message["jobs"])
    except ConnectionError:  # the bot is gone; nobody is left to report to
        return


def _device_name() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def _run_jobs(engine: Any, specs: list[JobSpec], inbox: _Inbox, outbox: Connection) -> None:
    """Run ``specs`` as one batch (``Engine.stylize_batch`` optimises compatible jobs together) and report each.

    A job cancelled inside a batch is reported at once, while the others go on. If the batch fails as a whole
    (say, out of GPU memory), its jobs are run again one by one, so an error is reported against the job that
    causes it and the others still get their pictures.
    """
    from nst_engine.errors import NSTError
    from nst_engine.images import save_image
    from nst_engine.options import StylizeOptions
    from nst_engine.transfer import BatchRequest

    requests, runnable = [], []
    for spec in specs:
        try:
            requests.append(BatchRequest(spec.content, spec.styles, StylizeOptions.from_mapping(spec.options)))
            runnable.append(spec)
        except NSTError as error:
            outbox.send({"event": "failed", "job": spec.job_id, "message": str(error)})
    if not runnable:
        return
    iterations = [0] * len(runnable)
    reported: set[int] = set()

    def on_progress(index: int, progress: Any) -> None:
        iterations[index] = progress.iteration
        preview = None
        if progress.preview is not None:
            buffer = io.BytesIO()
            progress.preview.save(buffer, "PNG")
            preview = buffer.getvalue()
        outbox.send({"event": "progress", "job": runnable[index].job_id, "iteration": progress.iteration,
                     "total": progress.total, "eta": progress.eta, "preview": preview})

    def should_stop(index: int) -> bool:
        if not inbox.should_stop(runnable[index].job_id):
            return False
        if index not in reported and len(runnable) > 1:  # tell the bot now, not when the batch ends
            reported.add(index)
            outbox.send({"event": "done", "job": runnable[index].job_id, "iterations": iterations[index],
                         "elapsed": None, "cancelled": True, "device": None})
        return True

    try:
        results = engine.stylize_batch(requests, on_progress=on_progress, should_stop=should_stop)
    except ConnectionError:
        raise
    except Exception as error:
        remaining = [spec for index, spec in enumerate(runnable) if index not in reported]
        if len(remaining) > 1:
            log.warning("a batch of %d jobs failed (%s); running them one by one", len(remaining), error)
            for spec in remaining:
                _run_jobs(engine, [spec], inbox, outbox)
            return
        if not isinstance(error, NSTError):  # a bug or a CUDA error: the admins get the traceback
            traceback.print_exc()
        message = str(error) if isinstance(error, NSTError) else \
            "The engine hit an unexpected error on this image; the admins can see the log."
        for spec in remaining:
            outbox.send({"event": "failed", "job": spec.job_id, "message": message})
        return
    for index, (spec, result) in enumerate(zip(runnable, results)):
        if index in reported:
            continue
        try:
            if result.error:
                raise NSTError(result.error)
            if not result.cancelled:
                save_image(result.image, spec.result)
        except (NSTError, OSError) as error:
            log.warning("job %s: %s", spec.job_id, error)
            outbox.send({"event": "failed", "job": spec.job_id, "message": str(error) if isinstance(error, NSTError)
                         else "The result could not be saved on the bot's disk; the admins can see the log."})
            continue
        outbox.send({"event": "done", "job": spec.job_id, "iterations": result.iterations,
                     "elapsed": result.elapsed, "cancelled": result.cancelled, "device": result.device,
                     "batch_size": result.batch_size})


# ------------------------------------------------------------------------------------------------- bot side


class EngineProcess:
    """Starts and talks to the worker; events arrive on :attr:`events` (an asyncio queue).

    When the worker exits for any reason, an ``{"event": "exit", "code": N}`` event is queued.
    """

    def __init__(self, weights: str | None, configured: str | None) -> None:
        self.weights, self.configured = weights, configured
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.process: multiprocessing.process.BaseProcess | None = None
        self._inbox: Connection | None = None
        self.generation = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def start(self) -> None:
        """Start a worker (spawned, so it shares nothing with the bot but the pipes)."""
        context = multiprocessing.get_context("spawn")
        inbox_read, inbox_write = context.Pipe(duplex=False)
        outbox_read, outbox_write = context.Pipe(duplex=False)
        self.process = context.Process(target=worker_main, name="nst-engine", daemon=True,
                                       args=(inbox_read, outbox_write, self.weights, self.configured))
        self.process.start()
        inbox_read.close()
        outbox_write.close()
        self._inbox = inbox_write
        self.generation += 1
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_events, args=(outbox_read, self.process, loop, self.generation),
                         name="nst-engine-events", daemon=True).start()
        log.info("engine process started (pid %s)", self.process.pid)

    def _read_events(self, conn: Connection, process: multiprocessing.process.BaseProcess,
                     loop: asyncio.AbstractEventLoop, generation: int) -> None:
        while True:
            try:
                event = conn.recv()
            except (EOFError, OSError):
                break
            event["generation"] = generation
            loop.call_soon_threadsafe(self.events.put_nowait, event)
        process.join()
        conn.close()
        exit_event = {"event": "exit", "code": process.exitcode, "generation": generation}
        try:
            loop.call_soon_threadsafe(self.events.put_nowait, exit_event)
        except RuntimeError:  # the loop has closed: the bot is shutting down
            pass

    def _send(self, message: dict[str, Any]) -> bool:
        if self._inbox is None:
            return False
        try:
            self._inbox.send(message)
            return True
        except (BrokenPipeError, OSError):
            return False

    def run(self, jobs: list[JobSpec]) -> bool:
        return self._send({"op": "run", "jobs": jobs})

    def cancel(self, job_id: str) -> None:
        self._send({"op": "cancel", "job": job_id})

    def kill(self) -> None:
        """Stop a stuck or broken worker at once; its exit event follows."""
        if self.process is not None and self.process.is_alive():
            self.process.kill()

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish, then kill it if it does not."""
        process = self.process
        if process is None:
            return
        self._send({"op": "stop"})
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
        await asyncio.get_running_loop().run_in_executor(None, process.join, timeout)
        if process.is_alive():
            process.kill()
            await asyncio.get_running_loop().run_in_executor(None, process.join, timeout)
