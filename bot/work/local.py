"""The local work queue: one engine process on this machine, fed over two pipes (the default backend).

torch lives only in that process, so a running job never stalls the bot's event loop. The process is spawned
(it shares nothing with the bot but the pipes) without the bot's secrets in its environment, loads VGG19 once
and runs one batch at a time with :func:`~bot.work.runner.run_batch`, checking its inbox before every optimiser
iteration so a cancel stops a job within one iteration. Commands and events are the :mod:`bot.work.protocol`
dataclasses, pickled. If the bot dies the process reads end-of-file and exits; if the process dies, its jobs
end in ``Lost`` and a new process is started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import re
import threading
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Iterator, Sequence

from .protocol import CancelJob, Command, Done, Event, Failed, Fatal, JobSpec, Lost, Ready, RunJobs, StopEngine
from .queue import WorkQueue, WorkUnavailable

log = logging.getLogger(__name__)

ENGINE_NICENESS = 5  # the engine yields the CPU to the bot's event loop when both want it
START_TIMEOUT = 300.0
STOP_TIMEOUT = 5.0
# Environment variables the engine process never needs and must not see (tokens, passwords, secret files).
SECRET_NAMES = re.compile(r"^DISCORD_|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
ENGINE_DIED = "the engine process died"


# ------------------------------------------------------------------------------------------- engine side


class _Inbox:
    """The engine's end of the command pipe: cancels are noted as they arrive, other commands kept in order."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cancelled: set[str] = set()
        self.pending: list[Command] = []
        self.closed = False

    def _take(self, command: Command) -> None:
        if isinstance(command, CancelJob):
            self.cancelled.add(command.job_id)
        else:
            self.pending.append(command)

    def drain(self) -> None:
        try:
            while not self.closed and self.conn.poll():
                self._take(self.conn.recv())
        except (EOFError, OSError):
            self.closed = True

    def next(self) -> Command:
        while not self.pending:
            try:
                self._take(self.conn.recv())
            except (EOFError, OSError):
                return StopEngine()
        return self.pending.pop(0)

    def should_stop(self, job_id: str) -> bool:
        self.drain()
        return self.closed or job_id in self.cancelled


def engine_main(inbox_conn: Connection, outbox: Connection, weights: str | None, configured: str | None) -> None:
    """Entry point of the engine process: load VGG19 once, then run batches until told to stop."""
    try:
        os.nice(ENGINE_NICENESS)
    except OSError:
        pass
    from nst_engine.errors import NSTError
    from nst_engine.transfer import Engine

    from .runner import device_name, run_batch

    try:
        engine = Engine(weights, configured=configured)
    except NSTError as error:
        outbox.send(Fatal(str(error)))
        return
    inbox = _Inbox(inbox_conn)
    try:
        outbox.send(Ready(device_name()))
        while not isinstance(command := inbox.next(), StopEngine):
            if isinstance(command, RunJobs):
                run_batch(engine, command.jobs, outbox.send, inbox.should_stop)
                inbox.cancelled.difference_update(spec.job_id for spec in command.jobs)
    except ConnectionError:  # the bot is gone; nobody is left to report to
        return


@contextmanager
def without_secrets() -> Iterator[None]:
    """Take secret variables out of this process's environment while a child process is started."""
    hidden = {name: os.environ.pop(name) for name in list(os.environ) if SECRET_NAMES.search(name)}
    try:
        yield
    finally:
        os.environ.update(hidden)


# ---------------------------------------------------------------------------------------------- bot side


class LocalWorkQueue(WorkQueue):
    """Supervises the engine process: starts it, hands it one batch at a time, restarts it when it dies."""

    def __init__(self, weights: str | None, configured: str | None, start_timeout: float = START_TIMEOUT) -> None:
        super().__init__()
        self.weights, self.configured, self.start_timeout = weights, configured, start_timeout
        self.process: multiprocessing.process.BaseProcess | None = None
        self._commands: Connection | None = None
        self._generation = 0
        self._running: set[str] = set()  # jobs in the engine now
        self._ready = False
        self._first: asyncio.Future[str | None] | None = None  # the first start: None when ready, else why not
        self._closing = False
        self._gave_up = False  # the engine said it cannot start (Fatal)

    async def start(self) -> None:
        self._first = asyncio.get_running_loop().create_future()
        self._spawn()
        try:
            failure = await asyncio.wait_for(asyncio.shield(self._first), self.start_timeout)
        except asyncio.TimeoutError:
            failure = "the engine process did not start in time"
        if failure is not None:
            await self.close()
            raise WorkUnavailable(failure)

    def free_slots(self) -> int:
        return 1 if self._ready and not self._running and not self._closing else 0

    def workers(self) -> int:
        return 1 if self._ready else 0

    async def submit(self, jobs: Sequence[JobSpec]) -> None:
        self._running.update(spec.job_id for spec in jobs)
        self._send(RunJobs(tuple(jobs)))  # if the pipe is broken, the process's exit reports the jobs lost

    async def cancel(self, job_id: str) -> None:
        if job_id in self._running:
            self._send(CancelJob(job_id))

    async def abort(self, job_id: str) -> None:
        """Kill the engine process (the only way to stop a stuck job); every job in it ends in ``Lost``."""
        if job_id in self._running and self.process is not None and self.process.is_alive():
            self.process.kill()

    async def close(self) -> None:
        self._closing = True
        process = self.process
        if process is None:
            return
        self._send(StopEngine())
        if self._commands is not None:
            self._commands.close()
            self._commands = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, process.join, STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            await loop.run_in_executor(None, process.join, STOP_TIMEOUT)

    # ----------------------------------------------------------------------------------------- supervision

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        commands_read, commands_write = context.Pipe(duplex=False)
        events_read, events_write = context.Pipe(duplex=False)
        self.process = context.Process(target=engine_main, name="nst-engine", daemon=True,
                                       args=(commands_read, events_write, self.weights, self.configured))
        with without_secrets():
            self.process.start()
        commands_read.close()
        events_write.close()
        self._commands = commands_write
        self._generation += 1
        threading.Thread(target=self._read_events, name="nst-engine-events", daemon=True,
                         args=(events_read, self.process, asyncio.get_running_loop(), self._generation)).start()
        log.info("engine process started (pid %s)", self.process.pid)

    def _read_events(self, conn: Connection, process: multiprocessing.process.BaseProcess,
                     loop: asyncio.AbstractEventLoop, generation: int) -> None:
        """Runs in a thread per process: forwards its events to the loop, then reports its exit."""
        try:
            while True:
                try:
                    event = conn.recv()
                except (EOFError, OSError):
                    break
                loop.call_soon_threadsafe(self._on_event, generation, event)
            process.join()
            conn.close()
            loop.call_soon_threadsafe(self._on_exit, generation, process.exitcode)
        except RuntimeError:  # the loop has closed: the bot is shutting down
            pass

    def _on_event(self, generation: int, event: Event) -> None:
        if generation != self._generation:
            return  # from a process already given up on
        first_start = self._first is not None and not self._first.done()
        if isinstance(event, Ready):
            self._ready = True
            if first_start:
                self._first.set_result(None)
            else:
                event = dataclasses.replace(event, restarted=True)
        elif isinstance(event, Fatal):
            self._gave_up = True
            if first_start:
                self._first.set_result(event.message)
                return
        elif isinstance(event, (Done, Failed)):  # the job left the engine
            self._running.discard(event.job)
        self.events.put_nowait(event)

    def _on_exit(self, generation: int, code: int | None) -> None:
        if generation != self._generation or self._closing:
            return
        was_ready, self._ready = self._ready, False
        lost, self._running = sorted(self._running), set()
        if self._first is not None and not self._first.done():
            self._first.set_result(f"the engine process exited (code {code})")
            return
        for job_id in lost:
            self.events.put_nowait(Lost(job_id, ENGINE_DIED))
        if not was_ready:  # it died while loading: starting it again would fail the same way
            if not self._gave_up:
                self.events.put_nowait(Fatal(f"the engine process exited while starting (code {code})"))
            return
        if lost:
            log.warning("the engine process exited (code %s) with %d job(s) in it; restarting it", code, len(lost))
        else:
            log.warning("the engine process is gone; restarting it")
        self._spawn()

    def _send(self, command: Command) -> None:
        if self._commands is None:
            return
        try:
            self._commands.send(command)
        except (BrokenPipeError, OSError):
            pass  # the process is gone; its exit is on its way
