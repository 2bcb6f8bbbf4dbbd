"""Decoding untrusted uploads outside the bot's process: a small pool of sandboxed worker processes.

A worker is a fresh ``python -m bot.intake.decoder`` that imports Pillow and numpy only (no torch, no discord.py),
gets no secrets in its environment, caps its own address space, and stops a decode that uses more CPU time than
allowed: the kernel's CPU-time signal, caught in the worker, which replies "too long" and ends. (The worker says
so itself because its exit status is not reliable evidence: in a long test run asyncio reported a stopped
worker's status as 255, "unknown child", after something else in the process had reaped it.) The pool also caps
each decode's wall time; a worker that overruns, runs out of memory or dies is killed and replaced. The bot's
event loop only waits on pipes, so a runaway decoder can neither block it nor fill its thread pool.

Protocol over the worker's stdin and stdout: a request is one JSON line followed by the upload's bytes; a
reply is one JSON line followed, on success, by the decoded picture as raw 8-bit RGB: for an animation (a request
that allows more than one frame, and an animated GIF, APNG or WebP) every kept frame in turn, the reply naming
their count, durations and loop. The bot checks the count and size against its request before reading a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, AsyncIterator, BinaryIO, Hashable

from PIL import Image

from nst_engine.errors import ImageError
from nst_engine.images import load_image

from bot.config import LimitsConfig

from .decode_budget import DecodeBudget
from .frames import Picture, checked_timing, frame_count, frames_reply, picture

log = logging.getLogger(__name__)

# The limit counts CPU seconds (enforced in the worker by RLIMIT_CPU), so a busy machine does not turn an
# ordinary upload into a refusal; wall time is capped too, at this multiple, for a decoder that is stuck.
WALL_TIME_FACTOR = 3.0
START_TIMEOUT = 60.0  # a worker imports Pillow and numpy; slow on a busy machine, but never this slow
PASSED_ENVIRONMENT = ("PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class DecoderUnavailable(Exception):
    """No decoder process could be started (an operational problem, not the upload's fault)."""


@dataclass(frozen=True)
class DecodeRequest:
    """What to decode and how far: the caps the bot applies to every upload."""

    what: str
    max_pixels: int
    long_side: int
    max_aspect: float
    requester: Hashable = None  # whose upload: decodes are shared fairly between requesters
    max_frames: int = 1  # over 1: an animated upload comes back as an Animation of at most this many frames
    frame_side: int = 0  # the long side of an animation's frames (at most ``long_side``); 0: ``long_side``


class FairSlots:
    """``count`` slots, handed out fairly: the waiter whose requester holds the fewest slots goes first, and
    among equals the one served longest ago (round robin), so one member's burst of slow uploads cannot make
    everyone else's wait behind it.
    """

    def __init__(self, count: int) -> None:
        self.free = count
        self.held: Counter[Hashable] = Counter()
        self.waiting: list[tuple[Hashable, asyncio.Future]] = []
        self.served: dict[Hashable, int] = {}  # requester → grant number, kept while it holds or waits
        self.grants = 0

    @contextlib.asynccontextmanager
    async def hold(self, requester: Hashable) -> AsyncIterator[None]:
        if self.free and not self.waiting:
            self.free -= 1
            self._granted(requester)
        else:
            entry = (requester, asyncio.get_running_loop().create_future())
            self.waiting.append(entry)
            try:
                await entry[1]
            except asyncio.CancelledError:
                if entry in self.waiting:
                    self.waiting.remove(entry)
                else:  # granted just as it was cancelled: pass the slot on
                    self.held[requester] -= 1
                    self._grant_next()
                self._forget(requester)
                raise
        try:
            yield
        finally:
            self.held[requester] -= 1
            self._grant_next()
            self._forget(requester)

    def _granted(self, requester: Hashable) -> None:
        self.held[requester] += 1
        self.grants += 1
        self.served[requester] = self.grants

    def _grant_next(self) -> None:
        if not self.waiting:
            self.free += 1
            return
        entry = min(self.waiting, key=lambda waiter: (self.held[waiter[0]], self.served.get(waiter[0], 0)))
        self.waiting.remove(entry)
        self._granted(entry[0])
        entry[1].set_result(None)

    def _forget(self, requester: Hashable) -> None:
        if self.held[requester] <= 0 and all(waiter[0] != requester for waiter in self.waiting):
            del self.held[requester]
            self.served.pop(requester, None)


class DecoderWorker:
    """One worker process and its pipes; used for one decode at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, memory_limit: int) -> "DecoderWorker":
        environment = {key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.intake.decoder", str(memory_limit), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env={**environment, **SINGLE_THREADED})
        except OSError as error:
            raise DecoderUnavailable(f"cannot start a decoder process ({error.strerror})") from None
        worker = cls(process)
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            ready = b""
        if ready.strip() != b"ready":
            worker.kill()
            raise DecoderUnavailable(f"the decoder process did not start (exit status {process.returncode})")
        return worker

    async def decode(self, request: DecodeRequest, data: bytes, cpu_seconds: float) -> tuple[dict[str, Any], bytes]:
        header = {"bytes": len(data), "what": request.what, "max_pixels": request.max_pixels,
                  "long_side": request.long_side, "max_aspect": request.max_aspect, "cpu_seconds": cpu_seconds,
                  "max_frames": request.max_frames, "frame_side": request.frame_side or request.long_side}
        self.process.stdin.write(json.dumps(header).encode() + b"\n" + data)
        await self.process.stdin.drain()
        reply = json.loads(await self.process.stdout.readline() or b"null")
        if not isinstance(reply, dict):
            raise EOFError("the decoder process ended without replying")
        if not reply.get("ok"):
            return reply, b""
        width, height = reply["size"]
        if not (0 < width <= request.long_side and 0 < height <= request.long_side):  # trust nothing unchecked
            raise ValueError(f"the decoder process replied with a {width}×{height} picture")
        frames = checked_timing(reply, request.max_frames)
        return reply, await self.process.stdout.readexactly(frames * width * height * 3)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()

    async def close(self) -> None:
        self.kill()
        await self.process.wait()


class DecoderPool:
    """Up to ``workers`` decodes at once, each limited to ``time_limit`` CPU seconds (and a multiple of that in
    wall time) and its process to ``memory_limit`` bytes of address space; ``budget`` bounds each requester's
    decode time over a window (none by default)."""

    def __init__(self, workers: int = 2, time_limit: float = 10.0, memory_limit: int = 1 << 30,
                 budget: DecodeBudget | None = None) -> None:
        self.workers, self.time_limit, self.memory_limit = workers, time_limit, memory_limit
        self.budget = budget or DecodeBudget(0, 1)
        self._slots = FairSlots(workers)
        self._idle: list[DecoderWorker] = []
        self._busy: set[DecoderWorker] = set()
        self._closed = False

    async def start(self) -> None:
        """Start the workers ahead of the first upload (otherwise, or if this fails, they start on demand)."""
        started = await asyncio.gather(*(DecoderWorker.start(self.memory_limit)
                                         for _ in range(self.workers - len(self._idle))), return_exceptions=True)
        self._idle.extend(worker for worker in started if isinstance(worker, DecoderWorker))
        for error in {str(error) for error in started if isinstance(error, Exception)}:
            log.error("image decoder: %s", error)
        log.info("%d image decoder process(es) ready (limits: %g s, %d MB each)", len(self._idle),
                 self.time_limit, self.memory_limit >> 20)

    async def decode(self, data: bytes, request: DecodeRequest) -> Picture:
        """The upload as an upright 8-bit RGB image no longer than ``request.long_side`` (an :class:`Animation`
        of such frames when ``request.max_frames`` allows one and the upload is animated).

        Raises :class:`ImageError` with a message for the uploader, or :class:`DecoderUnavailable`.
        """
        return (await self.decode_counted(data, request))[0]

    async def decode_counted(self, data: bytes, request: DecodeRequest) -> tuple[Picture, int]:
        """:meth:`decode`, and how many frames the upload had (more than the picture's when it was thinned)."""
        async with self._slots.hold(request.requester):
            if self._closed:
                raise DecoderUnavailable("the bot is shutting down")
            self.budget.check(request.requester, request.what)  # here, so charges of earlier waiters count
            worker = self._idle_worker() or await DecoderWorker.start(self.memory_limit)
            self._busy.add(worker)
            keep, charged = False, self.time_limit  # a decode that had to be stopped costs the whole limit
            try:
                reply, pixels = await asyncio.wait_for(worker.decode(request, data, self.time_limit),
                                                       self.time_limit * WALL_TIME_FACTOR)
                keep, charged = not reply.get("retire"), float(reply.get("cpu_s", 0.0))
                if reply.get("too_long"):
                    raise self._too_long(request)
            except asyncio.TimeoutError:
                raise self._too_long(request) from None
            except (EOFError, OSError, ValueError, asyncio.IncompleteReadError):
                await worker.close()
                log.warning("the decoder process stopped while decoding the %s (exit status %s: out of memory "
                            "or crashed)", request.what, worker.process.returncode)
                raise ImageError(f"The {request.what} could not be decoded within this bot's memory and safety "
                                 "limits; please upload a smaller PNG or JPEG.") from None
            finally:
                self.budget.charge(request.requester, charged)
                self._busy.discard(worker)
                if keep and not self._closed:
                    self._idle.append(worker)
                else:
                    await worker.close()
        if not reply["ok"]:
            log.info("%s refused: %s", request.what, reply.get("detail") or reply["message"])
            raise ImageError(reply["message"])
        return picture(reply, pixels), reply.get("source_frames", 1)

    def _too_long(self, request: DecodeRequest) -> ImageError:
        log.warning("decoding the %s took over %g s; its decoder process was stopped", request.what,
                    self.time_limit)
        return ImageError(f"The {request.what} took too long to decode (over {self.time_limit:g} s), so it was "
                          "refused; please upload an ordinary PNG or JPEG.")

    def _idle_worker(self) -> DecoderWorker | None:
        """A started worker that is still alive (one may have been killed from outside while idle)."""
        while self._idle:
            worker = self._idle.pop()
            if worker.process.returncode is None:
                return worker
        return None

    async def close(self) -> None:
        self._closed = True
        workers, self._idle = self._idle + list(self._busy), []
        await asyncio.gather(*(worker.close() for worker in workers))


_shared_pool: DecoderPool | None = None


def shared_pool(limits: LimitsConfig) -> DecoderPool:
    """The bot's pool, created on first use with the ``[limits]`` from its config."""
    global _shared_pool
    if _shared_pool is None:
        budget = DecodeBudget(limits.decode_budget_seconds, limits.decode_budget_window)
        _shared_pool = DecoderPool(limits.decode_workers, limits.decode_seconds, limits.decode_memory_mb << 20, budget)
    return _shared_pool


async def close_shared_pool() -> None:
    global _shared_pool
    pool, _shared_pool = _shared_pool, None
    if pool is not None:
        await pool.close()


# --- the worker process ----------------------------------------------------------------------------------

def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Decode requests until stdin closes; one reply per request, in order."""
    replies.write(b"ready\n")
    replies.flush()
    while line := requests.readline():
        header = json.loads(line)
        data = requests.read(header["bytes"])
        started = _cpu_used()
        _limit_cpu(header["cpu_seconds"])
        reply, pixels = _decode_until_stopped(data, header)
        reply["cpu_s"] = round(_cpu_used() - started, 4)
        replies.write(json.dumps(reply).encode() + b"\n" + pixels)
        replies.flush()
        if reply.get("retire"):
            return


class DecodeStopped(BaseException):
    """Raised in a worker by its CPU-time signal while a decode runs; a BaseException, so that no ``except
    Exception`` inside a decoder can swallow it."""


class CpuAlarm:
    """A worker's SIGXCPU handler (:func:`main` installs it): it stops the decode under way, and is ignored
    between decodes (each decode raises the limit before it starts). The signal reaches Python between
    bytecodes, so a decode stuck in one long C call is ended by the pool's wall-time limit instead."""

    armed = False
    fired = False  # during the decode under way: so a decode that turned the stop into an error is still told

    def __call__(self, signum: int, frame: object) -> None:
        if self.armed:
            self.fired = True
            raise DecodeStopped


CPU_ALARM = CpuAlarm()


def _decode_until_stopped(data: bytes, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """:func:`decode_one`, or a "too long" reply that retires the worker if the CPU-time signal stops it: also
    where code inside the decode caught the stop and raised an error of its own (a full-suite run once answered
    such a decode "its header is damaged")."""
    too_long = {"ok": False, "too_long": True, "retire": True}, b""
    try:
        CPU_ALARM.armed, CPU_ALARM.fired = True, False
        reply = decode_one(data, header)
    except DecodeStopped:
        return too_long
    finally:
        CPU_ALARM.armed = False
    return too_long if CPU_ALARM.fired else reply


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _limit_cpu(seconds: float) -> None:
    """Have the kernel signal this process (SIGXCPU, see :class:`CpuAlarm`) once the coming decode has used
    ``seconds`` of CPU."""
    soft = math.ceil(_cpu_used() + seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))


def decode_one(data: bytes, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    caps = {"what": header["what"], "max_pixels": header["max_pixels"], "long_side": header["long_side"],
            "max_aspect": header["max_aspect"]}
    try:
        source_frames = frame_count(data, header) if header.get("max_frames", 1) > 1 else 1
        if source_frames > 1:
            return frames_reply(data, header, source_frames)
        image = load_image(data, **caps)
    except ImageError as error:
        cause = error.__context__
        return {"ok": False, "message": str(error), "detail": repr(cause)[:300] if cause else "",
                "retire": isinstance(cause, MemoryError)}, b""
    return {"ok": True, "size": image.size}, image.tobytes()


def main(argv: list[str]) -> None:
    import numpy  # noqa: F401 - loaded before the limit: its maths library reserves memory as it starts

    memory_limit = int(argv[0])
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    signal.signal(signal.SIGXCPU, CPU_ALARM)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print can never corrupt the protocol
    try:
        serve(sys.stdin.buffer, replies)
    except MemoryError:  # the upload itself did not fit; the pool tells the user, no traceback needed
        sys.exit(3)


if __name__ == "__main__":
    main(sys.argv[1:])
