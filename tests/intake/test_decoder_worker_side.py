"""The decoder worker's side of the protocol (found by mutation testing, docs/mutation-report.md): ``serve`` and
``decode_one`` run here in-process on byte streams, exactly as the worker process runs them on its pipes; ``main``
runs as the real ``python -m bot.intake.decoder`` process, spoken to over its pipes."""

from __future__ import annotations

import io
import json
import math
import os
import resource
import signal
import subprocess
import sys

import pytest

from bot.intake import decoder
from bot.intake.decoder import decode_one, serve
from nst_engine.errors import ImageError
from tests.intake import animated_files, hostile_files

pytestmark = pytest.mark.timeout(60)

HEADER = {"what": "content image", "max_pixels": 25_000_000, "long_side": 256, "max_aspect": 20,
          "cpu_seconds": 30, "max_frames": 1, "frame_side": 256}
PHOTO = hostile_files.encoded(hostile_files.noise(300, 200), "PNG")


@pytest.fixture(autouse=True)
def cpu_limit_restored():
    """serve() sets this process's CPU-time limit, as it does in a worker: put it back after each test."""
    before = resource.getrlimit(resource.RLIMIT_CPU)
    yield
    resource.setrlimit(resource.RLIMIT_CPU, before)


def request(data: bytes, **fields: object) -> bytes:
    return json.dumps({**HEADER, "bytes": len(data), **fields}).encode() + b"\n" + data


def replies(stream: bytes) -> list[tuple[dict, bytes]]:
    """The replies in a worker's output: a JSON line, then the pixels its size and frames say."""
    assert stream.startswith(b"ready\n")
    reader, found = io.BytesIO(stream[len(b"ready\n"):]), []
    while line := reader.readline():
        reply = json.loads(line)
        size = reply.get("size", (0, 0))
        found.append((reply, reader.read(size[0] * size[1] * 3 * reply.get("frames", 1) if reply["ok"] else 0)))
    return found


def burn_cpu(seconds: float) -> None:
    """Spend CPU time in this process (user and system), so that what it used before a decode is not zero."""
    start = decoder._cpu_used()
    while decoder._cpu_used() - start < seconds:
        os.stat(".")


def test_serve_answers_each_request_in_order_with_its_cpu_time() -> None:
    burn_cpu(0.2)
    output, before = io.BytesIO(), resource.getrusage(resource.RUSAGE_SELF)
    serve(io.BytesIO(request(PHOTO) + request(b"not a picture") + request(PHOTO, long_side=64)), output)
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    (photo, pixels), (refused, nothing), (small, fewer) = replies(output.getvalue())
    assert (photo["ok"], photo["size"], len(pixels)) == (True, [256, 171], 256 * 171 * 3)
    assert not refused["ok"] and refused["message"].startswith("The content image is not an image that can be read")
    assert nothing == b"" and not refused["retire"]
    assert small["size"] == [64, 43] and len(fewer) == 64 * 43 * 3
    for reply in (photo, refused, small):
        assert isinstance(reply["cpu_s"], float) and reply["cpu_s"] == round(reply["cpu_s"], 4)
    assert photo["cpu_s"] > 0  # decoding and resizing 60,000 pixels takes some CPU time
    assert sum(reply["cpu_s"] for reply in (photo, refused, small)) <= used + 0.001  # each decode's own time


def test_the_cpu_time_counted_is_user_and_system_time() -> None:
    burn_cpu(0.1)
    before = resource.getrusage(resource.RUSAGE_SELF)
    counted = decoder._cpu_used()
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert before.ru_stime > 0 and before.ru_utime + before.ru_stime <= counted <= after.ru_utime + after.ru_stime


def test_serve_stops_after_a_reply_that_retires_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decode that ran out of memory leaves the worker unfit: it replies, then ends (the pool starts another).
    Running out of memory is simulated: this test process must not really exhaust it."""
    def out_of_memory(data: bytes, **caps: object) -> None:
        try:
            raise MemoryError
        except MemoryError:
            raise ImageError("The content image needs more memory to decode than this bot allows.")

    monkeypatch.setattr(decoder, "load_image", out_of_memory)
    output = io.BytesIO()
    serve(io.BytesIO(request(PHOTO) + request(PHOTO)), output)
    [(reply, _)] = replies(output.getvalue())
    assert reply["retire"] and reply["detail"] == "MemoryError()" and "needs more memory" in reply["message"]


def test_serve_limits_the_cpu_time_of_each_decode() -> None:
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    before = decoder._cpu_used()
    serve(io.BytesIO(request(PHOTO, cpu_seconds=7.2)), io.BytesIO())
    soft, after_hard = resource.getrlimit(resource.RLIMIT_CPU)
    assert after_hard == hard
    assert math.ceil(before + 7.2) <= soft <= math.ceil(decoder._cpu_used() + 7.2)


def test_decode_one_reads_the_caps_from_the_header() -> None:
    reply, pixels = decode_one(PHOTO, HEADER)
    assert reply == {"ok": True, "size": (256, 171)} and len(pixels) == 256 * 171 * 3
    refused, _ = decode_one(PHOTO, {**HEADER, "max_pixels": 50_000})
    assert refused["message"] == "The content image is too large: 300×200 pixels; the limit is 0.05 megapixels."
    assert refused["detail"] == "" and refused["retire"] is False  # refused from the header: no cause
    thin, _ = decode_one(hostile_files.encoded(hostile_files.noise(300, 10), "PNG"), {**HEADER, "max_aspect": 20})
    assert thin["message"].startswith("The content image is too long and thin (300×10)")
    broken, _ = decode_one(hostile_files.truncated(PHOTO), {**HEADER, "what": "style image"})
    assert broken["message"].startswith("The style image is corrupt or truncated") and broken["detail"]


def test_decode_one_keeps_an_animation_only_when_the_request_allows_frames() -> None:
    gif = animated_files.many_frame_gif(6)
    still, pixels = decode_one(gif, HEADER)
    assert still == {"ok": True, "size": (32, 24)} and len(pixels) == 32 * 24 * 3
    frames, pixels = decode_one(gif, {**HEADER, "max_frames": 3, "frame_side": 16})
    assert (frames["frames"], frames["source_frames"], frames["size"]) == (3, 6, (16, 12))
    assert len(pixels) == 3 * 16 * 12 * 3
    two, _ = decode_one(animated_files.many_frame_gif(2), {**HEADER, "max_frames": 2})
    assert (two["frames"], two["source_frames"]) == (2, 2)
    one, _ = decode_one(hostile_files.encoded(hostile_files.noise(40, 30), "PNG"), {**HEADER, "max_frames": 3})
    assert one == {"ok": True, "size": (40, 30)}
    unnamed = {key: value for key, value in HEADER.items() if key not in ("max_frames", "frame_side")}
    assert decode_one(gif, unnamed)[0] == still  # a request that names no frame cap is for a still


def test_a_refusals_detail_for_the_log_is_cut_to_300_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cause's text comes from a library and can be long (simulated: no real file is known to do it)."""
    def wordy(data: bytes, **caps: object) -> None:
        try:
            raise ValueError("x" * 500)
        except ValueError:
            raise ImageError("The content image could not be read: its header is damaged.")

    monkeypatch.setattr(decoder, "load_image", wordy)
    reply, _ = decode_one(PHOTO, HEADER)
    assert reply["detail"] == repr(ValueError("x" * 500))[:300] and len(reply["detail"]) == 300


def test_the_worker_process_speaks_the_protocol_on_stdout_only() -> None:
    """The real worker: 'ready', then a reply per request; what Pillow or numpy might print goes to stderr."""
    worker = subprocess.run([sys.executable, "-m", "bot.intake.decoder", str(1 << 30)],
                            input=request(PHOTO) + request(b"junk"), capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert worker.returncode == 0
    (photo, pixels), (junk, _) = replies(worker.stdout)
    assert photo["size"] == [256, 171] and len(pixels) == 256 * 171 * 3 and not junk["ok"]


PROBE = """
import resource, sys
from bot.intake import decoder

def serve(requests, replies):
    print("a stray print")  # what a library might write to stdout
    print(resource.getrlimit(resource.RLIMIT_AS), file=sys.stderr)
    replies.write(b"the protocol")

decoder.serve = serve
decoder.main([sys.argv[1]])
"""


def test_the_worker_process_caps_its_address_space_and_keeps_stdout_for_replies() -> None:
    inherited = str(resource.getrlimit(resource.RLIMIT_AS))
    for limit, expected in ((700 << 20, f"({700 << 20}, {700 << 20})"), (0, inherited)):
        worker = subprocess.run([sys.executable, "-c", PROBE, str(limit)], capture_output=True, timeout=60, text=True)
        assert worker.returncode == 0 and worker.stdout == "the protocol", worker.stderr
        assert sorted(worker.stderr.splitlines()) == sorted(["a stray print", expected])


@pytest.fixture
def cpu_alarm_installed():
    """The worker's SIGXCPU handler in this process, as main() installs it; the default put back after."""
    before = signal.signal(signal.SIGXCPU, decoder.CPU_ALARM)
    yield
    signal.signal(signal.SIGXCPU, before)


def test_a_decode_the_cpu_signal_stops_is_answered_too_long_and_the_worker_retires(
        cpu_alarm_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal is sent by hand (what the kernel sends at the limit), from inside a decode that then keeps
    busy in Python, as Pillow's chunked decoders do; an ``except Exception`` in the decoder cannot swallow it."""
    def busy_decoder(data: bytes, **caps: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGXCPU)
            while True:
                pass
        except Exception:  # noqa: BLE001 - what a careless decoder might do
            raise ImageError("swallowed")

    monkeypatch.setattr(decoder, "load_image", busy_decoder)
    output = io.BytesIO()
    serve(io.BytesIO(request(PHOTO) + request(PHOTO)), output)
    [(reply, pixels)] = replies(output.getvalue())  # it retired after the first
    assert reply["too_long"] and reply["retire"] and not reply["ok"] and pixels == b""
    assert not decoder.CPU_ALARM.armed


def test_a_decode_that_turns_the_cpu_stop_into_its_own_error_is_still_answered_too_long(
        cpu_alarm_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Code inside a decode that catches even the stop (a bare ``except``, or C code that reports a failed
    callback as its own error) must not turn it into another refusal: the signal fired, so the decode was too
    long."""
    def converting_decoder(data: bytes, **caps: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGXCPU)
            while True:
                pass
        except BaseException:  # noqa: BLE001 - what the failing run's decoder did somewhere
            raise ImageError("The content image could not be read: its header is damaged.") from None

    monkeypatch.setattr(decoder, "load_image", converting_decoder)
    output = io.BytesIO()
    serve(io.BytesIO(request(PHOTO) + request(PHOTO)), output)
    [(reply, pixels)] = replies(output.getvalue())
    assert reply["too_long"] and reply["retire"] and "message" not in reply and pixels == b""
    assert not decoder.CPU_ALARM.armed


def test_the_cpu_signal_between_decodes_is_ignored(cpu_alarm_installed: None) -> None:
    os.kill(os.getpid(), signal.SIGXCPU)  # not armed: nothing is raised, and the next decode runs as usual
    output = io.BytesIO()
    serve(io.BytesIO(request(PHOTO)), output)
    [(reply, pixels)] = replies(output.getvalue())
    assert reply["ok"] and len(pixels) == 256 * 171 * 3
