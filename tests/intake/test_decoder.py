"""The sandboxed decoder pool with real worker processes: results, refusals, time and memory limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import LimitsConfig
from bot.intake import decoder
from bot.intake.decoder import DecodeRequest, DecoderPool, FairSlots
from nst_engine.errors import ImageError
from tests.intake import animated_files, hostile_files

pytestmark = pytest.mark.timeout(120)

REQUEST = DecodeRequest("content image", max_pixels=25_000_000, long_side=256, max_aspect=20)


def pids(pool: DecoderPool) -> set[int]:
    return {worker.process.pid for worker in pool._idle}


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.fixture
async def pool():
    running = DecoderPool(workers=2, time_limit=20.0, memory_limit=1 << 30)
    await running.start()
    yield running
    await running.close()


async def test_decodes_to_a_checked_upright_rgb_picture_within_the_long_side(pool: DecoderPool) -> None:
    photo = await pool.decode(hostile_files.encoded(hostile_files.noise(600, 400), "JPEG"), REQUEST)
    assert photo.mode == "RGB" and photo.size == (256, 171)
    upright = await pool.decode(hostile_files.exif_rotated_jpeg(), REQUEST)
    assert upright.size == (20, 40) and upright.getpixel((10, 2))[0] > 200
    palette = await pool.decode(hostile_files.palette_with_transparency_png(), REQUEST)
    assert palette.getpixel((1, 1)) == (255, 255, 255) and palette.getpixel((6, 6)) == (0, 200, 0)
    cmyk = await pool.decode(hostile_files.cmyk_jpeg(), REQUEST)
    assert cmyk.getpixel((8, 8))[0] > 200 and cmyk.getpixel((8, 8))[1] < 60


async def test_refusals_carry_a_message_for_the_user_and_keep_the_worker(pool: DecoderPool) -> None:
    before = pids(pool)
    for data, phrase in [(hostile_files.endless_postscript(), "not an image that can be read"),
                         (hostile_files.psd(), "please use PNG, JPEG, WebP, GIF, BMP or TIFF"),
                         (hostile_files.many_scan_jpeg(256, 256, 500), "abnormal number of scans"),
                         (hostile_files.truncated(hostile_files.encoded(hostile_files.noise(64, 64), "PNG")),
                          "corrupt or truncated")]:
        with pytest.raises(ImageError, match=phrase) as error:
            await pool.decode(data, REQUEST)
        assert str(error.value).startswith("The content image ")
    assert pids(pool) == before  # a refused file costs no process


@pytest.fixture(scope="module")
def slow_to_decode() -> bytes:
    """100 MB of float pixels: a good part of a second of CPU to decode and rescale."""
    return hostile_files.float_tiff(5000, 5000)


def test_the_cpu_limit_stops_a_busy_worker_by_signal() -> None:
    spin = "from bot.intake.decoder import _limit_cpu; _limit_cpu(0.5)\nwhile True: pass"
    started = time.monotonic()
    process = subprocess.run([sys.executable, "-c", spin], timeout=60)
    assert process.returncode == -signal.SIGXCPU and time.monotonic() - started < 60


async def test_a_decode_stopped_for_cpu_time_is_refused_and_its_worker_replaced(
        slow_to_decode: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoder, "WALL_TIME_FACTOR", 100.0)  # so only the CPU signal can stop it
    pool = DecoderPool(workers=1, time_limit=0.5, memory_limit=1 << 30)
    await pool.start()
    try:
        (first,) = pids(pool)
        worker = pool._idle[0]
        decoding = asyncio.create_task(pool.decode(slow_to_decode, REQUEST))
        while not decoding.done():  # what the kernel sends past the limit, every second; sent now, as a big
            with contextlib.suppress(ProcessLookupError):  # decode may fit in the limit
                os.kill(first, signal.SIGXCPU)
            await asyncio.sleep(0.05)
        with pytest.raises(ImageError, match=r"took too long to decode \(over 0.5 s\)"):
            await decoding
        assert not alive(first)  # the worker replied "too long" and ended; its exit status is not relied on
        picture = await pool.decode(hostile_files.encoded(hostile_files.noise(32, 32), "PNG"), REQUEST)
        assert picture.size == (32, 32) and pids(pool) and first not in pids(pool)
    finally:
        await pool.close()


async def test_a_decode_over_the_wall_time_limit_is_killed(caplog: pytest.LogCaptureFixture) -> None:
    pool = DecoderPool(workers=1, time_limit=0.05, memory_limit=1 << 30)  # wall limit 0.15 s
    await pool.start()
    try:
        (first,) = pids(pool)
        # A stuck decoder, however fast the machine: the real process, stopped, spends no CPU time (so only the
        # wall limit can end it) and cannot answer an ordinary upload.
        os.kill(first, signal.SIGSTOP)
        with pytest.raises(ImageError) as refused:
            await pool.decode(hostile_files.encoded(hostile_files.noise(64, 64), "PNG"), REQUEST)
        assert str(refused.value) == ("The content image took too long to decode (over 0.05 s), so it was refused; "
                                      "please upload an ordinary PNG or JPEG.")
        assert "decoding the content image took over 0.05 s; its decoder process was stopped" in caplog.messages
        assert not alive(first)
        assert (await pool.decode(hostile_files.encoded(hostile_files.noise(64, 64), "PNG"), REQUEST)).size == (64, 64)
    finally:
        await pool.close()


async def test_memory_limit_refuses_what_does_not_fit_and_retires_the_worker(slow_to_decode: bytes) -> None:
    pool = DecoderPool(workers=1, time_limit=60.0, memory_limit=300 << 20)
    await pool.start()
    try:
        (first,) = pids(pool)
        with pytest.raises(ImageError, match="needs more memory to decode than this bot allows"):
            await pool.decode(slow_to_decode, REQUEST)  # 100 MB of floats, plus copies
        assert not alive(first)
        small = await pool.decode(hostile_files.float_tiff(64, 64), REQUEST)
        assert small.size == (64, 64)
    finally:
        await pool.close()


async def test_a_worker_that_dies_while_idle_is_not_used(pool: DecoderPool) -> None:
    for pid in pids(pool):
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    picture = await pool.decode(hostile_files.encoded(hostile_files.noise(32, 32), "PNG"), REQUEST)
    assert picture.size == (32, 32)


async def test_cancelled_decode_kills_its_worker(pool: DecoderPool) -> None:
    decoding = asyncio.create_task(pool.decode(hostile_files.sixteen_bit_grey_png(5000, 5000), REQUEST))
    for _ in range(200):  # until a worker has taken it (slow on a loaded machine)
        await asyncio.sleep(0.05)
        if pool._busy:
            break
    (busy,) = {worker.process.pid for worker in pool._busy}
    decoding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await decoding
    assert not alive(busy)


async def test_workers_hold_no_secrets_and_no_torch(pool: DecoderPool, monkeypatch: pytest.MonkeyPatch) -> None:
    await pool.close()
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token-for-the-bot-only")
    fresh = DecoderPool(workers=1)
    await fresh.start()
    try:
        (pid,) = pids(fresh)
        environment = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"secret-token" not in environment and b"DISCORD_TOKEN" not in environment
        assert "torch" not in Path(f"/proc/{pid}/maps").read_text()
    finally:
        await fresh.close()


async def test_slots_go_first_to_requesters_holding_fewest() -> None:
    slots, order, gates = FairSlots(1), [], {}

    async def use(requester: str, name: str) -> None:
        async with slots.hold(requester):
            order.append(name)
            gates[name] = asyncio.Event()
            await gates[name].wait()

    first = asyncio.create_task(use("mallory", "m1"))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(use(who, name)) for who, name in (("mallory", "m2"), ("mallory", "m3"))]
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(use("carol", "c0"))
    await asyncio.sleep(0)
    cancelled.cancel()
    queued.append(asyncio.create_task(use("alice", "a1")))
    await asyncio.sleep(0)
    for name in ("m1", "a1", "m2", "m3"):
        await asyncio.sleep(0.01)
        assert order[-1] == name
        gates[name].set()
    await asyncio.gather(first, *queued)
    assert order == ["m1", "a1", "m2", "m3"] and slots.free == 1 and not slots.waiting and not slots.held


async def test_the_shared_pool_is_made_once_from_the_limits() -> None:
    await decoder.close_shared_pool()
    limits = LimitsConfig(decode_workers=3, decode_seconds=7, decode_memory_mb=100, decode_budget_seconds=5,
                          decode_budget_window=60)
    try:
        pool = decoder.shared_pool(limits)
        assert (pool.workers, pool.time_limit, pool.memory_limit) == (3, 7, 100 << 20)
        assert (pool.budget.seconds, pool.budget.window) == (5, 60)
        assert decoder.shared_pool(LimitsConfig()) is pool
    finally:
        await decoder.close_shared_pool()
    assert decoder._shared_pool is None and decoder.shared_pool(LimitsConfig()) is not pool
    await decoder.close_shared_pool()


async def test_an_animation_is_asked_for_and_comes_back_frame_by_frame(pool: DecoderPool) -> None:
    request = DecodeRequest("content image", 25_000_000, 256, 20, max_frames=3)
    animation, source_frames = await pool.decode_counted(animated_files.many_frame_gif(6), request)
    assert (animation.frame_count, source_frames) == (3, 6)
