"""A process posing as a worker, against the real backend and a real redis-server: everything it writes to Redis
is checked against the protocol before the bot acts on it (heartbeats, events, previews, results)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from PIL import Image

from bot.work.protocol import Done, Failed, Progress, Ready, RunJobs, from_json, to_json
from bot.work.redis_link import EVENTS, GROUP, JOBS, WORKER_PREFIX, cancel_key, result_key
from bot.work.redis_queue import RedisWorkQueue
from tests.intake import hostile_files
from tests.work.redis.helpers import RedisServer, job

pytestmark = pytest.mark.timeout(120)


class Impostor:
    """Takes jobs from the stream as a worker would and answers whatever a test tells it to."""

    def __init__(self, server: RedisServer, name: str = "impostor") -> None:
        self.redis, self.name = server.client(), name

    async def beat(self, **fields: object) -> None:
        await self.redis.set(WORKER_PREFIX + self.name, json.dumps({"device": "cpu", "batch_size": 1, **fields}), ex=30)

    async def take(self) -> tuple[RunJobs, dict[str, str]]:
        for _ in range(100):
            reply = await self.redis.xreadgroup(GROUP, self.name, {JOBS: ">"}, count=1, block=100)
            if reply:
                fields = reply[0][1][0][1]
                return from_json(fields[b"jobs"]), json.loads(fields[b"runs"])
        raise AssertionError("no job was handed over")

    async def send(self, run: str, event: object) -> None:
        await self.redis.xadd(EVENTS, {"run": run, "event": event if isinstance(event, str) else to_json(event)})


async def handed_over(queue: RedisWorkQueue, impostor: Impostor, spec) -> str:
    await impostor.beat()
    for _ in range(100):
        if queue.free_slots():
            break
        await asyncio.sleep(0.1)
    await queue.submit([spec])
    _, runs = await impostor.take()
    return runs[spec.job_id]


async def next_of(queue: RedisWorkQueue, kinds: tuple[type, ...], timeout: float = 30):
    while True:
        event = await asyncio.wait_for(queue.events.get(), timeout)
        if isinstance(event, kinds):
            return event


async def test_a_bomb_result_is_refused_without_decoding_it_in_the_bot(tmp_path: Path, queue, redis_server) -> None:
    impostor = Impostor(redis_server)
    spec = job(tmp_path, "bomb", size=64)
    run = await handed_over(queue, impostor, spec)
    bomb = hostile_files.flat_grey_png(12000, 14000)
    assert len(bomb) < 600_000  # small in Redis, 168 megapixels once decoded
    await impostor.redis.set(result_key(run), bomb)
    await impostor.send(run, Done(spec.job_id, 4, 1.0, width=12000, height=14000, output="x"))
    ending = await next_of(queue, (Done, Failed))
    assert isinstance(ending, Failed) and "not what was asked for" in ending.message
    assert not Path(spec.result).exists()


async def test_a_result_is_written_as_the_picture_that_was_checked(tmp_path: Path, queue, redis_server) -> None:
    impostor = Impostor(redis_server)
    spec = job(tmp_path, "fine", size=64)
    run = await handed_over(queue, impostor, spec)
    await impostor.redis.set(result_key(run), hostile_files.encoded(hostile_files.noise(64, 43), "PNG"))
    await impostor.send(run, Done(spec.job_id, 4, 1.0, width=5, height=5, output="/etc/passwd"))
    ending = await next_of(queue, (Done, Failed))
    assert isinstance(ending, Done) and (ending.width, ending.height) == (64, 43)
    assert ending.output == spec.result
    with Image.open(spec.result) as written:
        assert written.format == "PNG" and written.size == (64, 43)


async def test_malformed_events_and_outsize_previews_are_dropped(tmp_path: Path, queue, redis_server) -> None:
    impostor = Impostor(redis_server)
    spec = job(tmp_path, "noisy", size=64)
    run = await handed_over(queue, impostor, spec)
    await impostor.send(run, json.dumps({"event": "progress", "job": spec.job_id, "iteration": "lots", "total": 4,
                                         "eta": None}))
    await impostor.send(run, Progress(spec.job_id, 1, 4, None, None, b"\x00" * (40 << 20)))  # over the protocol cap
    big = hostile_files.encoded(hostile_files.noise(300, 300), "PNG")  # a PNG, but over the 256-px preview size
    await impostor.send(run, Progress(spec.job_id, 2, 4, None, None, big))
    small = hostile_files.encoded(hostile_files.noise(64, 40), "PNG")
    await impostor.send(run, Progress(spec.job_id, 3, 4, 1.0, 0.5, small))
    first = await next_of(queue, (Progress,))
    second = await next_of(queue, (Progress,))
    assert (first.iteration, first.preview) == (2, None)
    assert (second.iteration, second.preview) == (3, small)


async def test_a_heartbeat_with_nonsense_fields_does_not_stall_dispatch(tmp_path: Path, queue, redis_server) -> None:
    impostor = Impostor(redis_server)
    await impostor.beat(batch_size="lots", device={"x": 1})
    ready = await next_of(queue, (Ready,), timeout=10)
    assert (ready.worker, ready.batch_size, ready.device) == ("impostor", 1, "?")
    assert queue.free_slots() == 1
    spec = job(tmp_path, "after", size=64)
    await queue.submit([spec])
    await impostor.take()  # the job was handed over


async def test_a_worker_still_running_a_superseded_run_is_told_to_stop(tmp_path: Path, queue, redis_server) -> None:
    impostor = Impostor(redis_server)
    spec = job(tmp_path, "orphan", size=64)
    run = await handed_over(queue, impostor, spec)
    await queue.abort(spec.job_id)  # the core gave up on this run (time limit): a new run would replace it
    await impostor.redis.delete(cancel_key(run))
    channel = impostor.redis.pubsub()
    await channel.subscribe("nst:cancel")
    await impostor.send(run, Progress(spec.job_id, 1, 400, None))
    told = None
    for _ in range(100):
        message = await channel.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message:
            told = message["data"].decode()
            break
    assert told == run and await impostor.redis.exists(cancel_key(run))
    await channel.aclose()
