"""Edges of the bot's Redis backend (bot/work/redis_queue.py) that only a worker or an outage brings about, quickly:
each test drives :class:`RedisWorkQueue` against a real redis-server and plays the worker's side itself (taking
job entries under a consumer name, writing or letting lapse a heartbeat, writing events, sometimes with chosen
stream ids), or restarts the server with its data, without it, or from an older copy of it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.work.protocol import Done, Failed, Lost, Progress, Ready, Started, to_json
from bot.work.redis_link import CANCEL_CHANNEL, EVENTS, GROUP, JOBS, WORKER_PREFIX, cancel_key, input_key, result_key
from bot.work.redis_queue import NOT_SAVED, UNUSABLE, RedisWorkQueue, _stream_id
from bot.work.worker_output import png_byte_cap
from tests.intake import hostile_files
from tests.work.redis.helpers import RedisServer, job, queue_config
from tests.work.redis.test_hostile_worker import Impostor, next_of

pytestmark = pytest.mark.timeout(60)

FAR = "99999999999999-0"  # an event id above any the server makes now: the cursor then stands above a new stream's
RESTARTED = "Redis restarted without its data"
QUEUE_LOG = "bot.work.redis_queue"


@contextlib.asynccontextmanager
async def backend(server: RedisServer, **settings):
    """The bot's backend against ``server``, with ``settings`` in its [queue] config; closed afterwards."""
    queue = RedisWorkQueue(dataclasses.replace(queue_config(server.url), **settings))
    await queue.start()
    try:
        yield queue
    finally:
        await queue.close()


async def until(condition, what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` (a function, maybe async) until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def restart(queue: RedisWorkQueue, old: RedisServer, new: RedisServer | None = None) -> None:
    """Kill ``old``; once the backend has seen the outage, start ``new`` (or ``old`` again) on the same port."""
    old.kill()
    await until(lambda: queue.refusal() is not None, "the backend saw the outage")
    new = new or old
    new.kill()
    new.port = old.port
    new.start()


def logged(caplog) -> list[str]:
    """The backend's log messages, whole."""
    return [record.getMessage() for record in caplog.records]


async def send(impostor: Impostor, run: str, event: object, entry: str = "*") -> None:
    """A worker's event, at stream id ``entry`` (Redis's next one by default)."""
    await impostor.redis.xadd(EVENTS, {"run": run, "event": to_json(event)}, id=entry)


async def submit(queue: RedisWorkQueue, taker: Impostor, *specs) -> tuple[str, dict[str, str]]:
    """Submit ``specs`` as one entry and let ``taker`` take it: the entry id and each job's run id."""
    await queue.submit(list(specs))
    await taker.take()
    pending = await taker.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=100, consumername=taker.name)
    fields = (await taker.redis.xrange(JOBS, min=pending[-1]["message_id"], max=pending[-1]["message_id"]))[0][1]
    return pending[-1]["message_id"].decode(), json.loads(fields[b"runs"])


class StopRequests:
    """The stop requests on the cancel channel, as a worker hears them."""

    def __init__(self, impostor: Impostor) -> None:
        self.redis, self.channel = impostor.redis, impostor.redis.pubsub()

    async def __aenter__(self) -> "StopRequests":
        await self.channel.subscribe(CANCEL_CHANNEL)
        return self

    async def __aexit__(self, *_) -> None:
        await self.channel.aclose()

    async def next(self) -> str:
        for _ in range(100):
            message = await self.channel.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                return message["data"].decode()
        raise AssertionError("no stop request")

    async def none_before_a_marker(self) -> bool:
        """Whether nothing was published before a marker sent now (so no stop was requested)."""
        await self.redis.publish(CANCEL_CHANNEL, "marker")
        return await self.next() == "marker"


def test_stream_ids_compare_as_numbers() -> None:
    assert _stream_id("10-0") > _stream_id("9-5")
    assert _stream_id("5") == (5, 0)
    assert _stream_id("7-3") == (7, 3)


async def test_jobs_of_a_worker_whose_heartbeat_lapsed_end_lost(tmp_path: Path, redis_server, caplog) -> None:
    caplog.set_level(logging.INFO, QUEUE_LOG)
    async with backend(redis_server, lost_after=1.5) as queue:
        ghost, alive = Impostor(redis_server, "ghost"), Impostor(redis_server, "alive")
        await ghost.redis.set(WORKER_PREFIX + "ghost", json.dumps({"device": "cpu", "batch_size": 2}), px=300)
        await alive.beat()
        _, ghost_runs = await submit(queue, ghost, job(tmp_path, "b-late"), job(tmp_path, "a-early"))
        alive_entry, alive_runs = await submit(queue, alive, job(tmp_path, "kept"))
        reason = "its worker ghost stopped responding (no heartbeat for 1.5 s)"
        assert [await next_of(queue, (Lost, Done, Failed), 10) for _ in range(2)] == [
            Lost("a-early", reason), Lost("b-late", reason)]
        assert f"job a-early lost: {reason}" in logged(caplog)
        pending = await alive.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=10)
        assert [(item["message_id"].decode(), item["consumer"]) for item in pending] == [(alive_entry, b"alive")]
        assert await alive.redis.xlen(JOBS) == 1
        assert not await alive.redis.exists(*(input_key(run, n) for run in ghost_runs.values() for n in (0, 1)))
        assert await alive.redis.exists(input_key(alive_runs["kept"], 0), input_key(alive_runs["kept"], 1)) == 2
        await Impostor(redis_server, "late").beat()  # its Ready comes from a later round of the same watch
        assert (await next_of(queue, (Ready,), 10)).worker == "late"
        assert "unreachable" not in caplog.text and queue.refusal() is None


async def test_no_job_is_reclaimed_before_lost_after_has_passed_since_the_connection(tmp_path: Path,
                                                                                        redis_server) -> None:
    """Workers get ``lost_after`` from the bot's (re)connection to show their heartbeat: a pending entry of a worker
    without one is reclaimed only then, not on the watch's first pass (every ``lost_after / 6``)."""
    async with backend(redis_server, lost_after=3.0) as queue:
        ghost = Impostor(redis_server, "ghost")  # never beats
        await submit(queue, ghost, job(tmp_path, "patient"))
        with pytest.raises(asyncio.TimeoutError):  # three watch passes, still within the grace
            await next_of(queue, (Lost, Done, Failed), 1.5)
        lost = await next_of(queue, (Lost, Done, Failed), 10)
        assert lost == Lost("patient", "its worker ghost stopped responding (no heartbeat for 3 s)")


async def test_the_watch_logs_a_redis_error_and_a_bug_and_goes_on_watching(redis_server, caplog) -> None:
    """Its worker scan is made to fail (a stand-in for a Redis error and for a bug in the code it calls): each is
    one log line that says what happened, and the next pass reconnects and sees a worker's heartbeat."""
    caplog.set_level(logging.INFO)
    async with backend(redis_server, lost_after=1.2) as queue:
        scan, failures = queue._scan_workers, [RedisConnectionError("connection reset by peer"), KeyError("device")]

        async def failing_scan() -> None:
            if failures:
                raise failures.pop(0)
            await scan()

        queue._scan_workers = failing_scan
        await until(lambda: not failures, "both failures raised")
        await Impostor(redis_server, "steady").beat()
        assert (await next_of(queue, (Ready,), 10)).worker == "steady"
        assert any(message.endswith("is unreachable (connection reset by peer); new jobs wait until it is back")
                   for message in logged(caplog)), logged(caplog)
        bug = [record for record in caplog.records if record.getMessage() == "the Redis work-queue watch failed"]
        assert len(bug) == 1 and bug[0].exc_info[0] is KeyError


async def test_abort_stops_the_run_and_acks_the_entry_after_its_last_job(tmp_path: Path, queue, redis_server) -> None:
    worker = Impostor(redis_server)
    await worker.beat()
    _, runs = await submit(queue, worker, job(tmp_path, "first"), job(tmp_path, "second"))
    async with StopRequests(worker) as stops:
        await queue.abort("first")
        assert await stops.next() == runs["first"]
        assert await next_of(queue, (Lost,), 5) == Lost("first", "stopped by force: it ran past the time limit")
        assert len(await worker.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=10)) == 1
        assert not await worker.redis.exists(input_key(runs["first"], 0), cancel_key(runs["first"]))
        assert await worker.redis.exists(input_key(runs["second"], 0))
        await queue.abort("second")
        assert await stops.next() == runs["second"]
        assert (await next_of(queue, (Lost,), 5)).job == "second"
        assert await worker.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=10) == []
        assert await worker.redis.xlen(JOBS) == 0
        await queue.abort("unknown")
        assert queue.events.empty() and await stops.none_before_a_marker()


async def test_cancel_asks_the_worker_to_stop_a_known_job_only(tmp_path: Path, queue, redis_server) -> None:
    worker = Impostor(redis_server)
    await worker.beat()
    _, runs = await submit(queue, worker, job(tmp_path, "running"))
    async with StopRequests(worker) as stops:
        await queue.cancel("running")
        assert await stops.next() == runs["running"]
        assert 0 < await worker.redis.ttl(cancel_key(runs["running"])) <= 86400
        await queue.cancel("unknown")
        assert await stops.none_before_a_marker()
    stops_asked = [key async for key in worker.redis.scan_iter(match=cancel_key("*"))]
    assert stops_asked == [cancel_key(runs["running"]).encode()]
    assert queue.events.empty()  # the worker ends it (Done, cancelled); the job is still the backend's
    assert queue.free_slots() == 0


async def test_workers_and_free_slots_follow_heartbeats_jobs_and_the_connection(tmp_path: Path, queue,
                                                                               redis_server) -> None:
    await Impostor(redis_server, "two").beat(batch_size=2)
    await Impostor(redis_server, "one").beat()
    await until(lambda: queue.workers() == 2, "both workers seen")
    assert queue.free_slots() == 3
    await queue.submit([job(tmp_path, "one")])
    assert queue.free_slots() == 2
    await queue.submit([job(tmp_path, name) for name in ("two", "three", "four")])
    assert queue.free_slots() == 0
    redis_server.kill()
    await until(lambda: queue.refusal() is not None, "the outage seen")
    assert (queue.workers(), queue.free_slots()) == (0, 0)


async def test_redis_restarted_without_its_data(tmp_path: Path, servers, caplog) -> None:
    """Jobs whose entry is gone end lost; the group is made again; the event cursor starts again from 0."""
    caplog.set_level(logging.INFO, QUEUE_LOG)
    server = servers("redis", "--appendonly", "no").start()
    async with backend(server) as queue:
        worker = Impostor(server)
        await worker.beat()
        await submit(queue, worker, job(tmp_path, "b-two"), job(tmp_path, "a-one"))
        _, runs = await submit(queue, worker, job(tmp_path, "c-three"))
        await send(worker, runs["c-three"], Progress("c-three", 1, 4, None), FAR)
        assert (await next_of(queue, (Progress,), 10)).iteration == 1
        await restart(queue, server)
        assert [await next_of(queue, (Lost,), 10) for _ in range(3)] == [
            Lost("a-one", RESTARTED), Lost("b-two", RESTARTED), Lost("c-three", RESTARTED)]
        await until(lambda: queue.refusal() is None, "connected again")
        worker = Impostor(server)  # connected again too
        assert [group["name"] for group in await worker.redis.xinfo_groups(JOBS)] == [GROUP.encode()]
        assert f"Redis at 127.0.0.1:{server.port}/0 is reachable again" in logged(caplog)
        _, runs = await submit(queue, worker, job(tmp_path, "after"))
        await send(worker, runs["after"], Progress("after", 1, 4, None))  # an id below FAR
        assert (await next_of(queue, (Progress,), 10)).job == "after"


async def test_redis_restarted_with_its_data_loses_nothing(tmp_path: Path, servers) -> None:
    server = servers("redis").start()  # AOF, fsynced on every write
    async with backend(server) as queue:
        worker = Impostor(server)
        await worker.beat()
        _, runs = await submit(queue, worker, job(tmp_path, "kept"))
        await send(worker, runs["kept"], Progress("kept", 1, 4, None))
        assert (await next_of(queue, (Progress,), 10)).iteration == 1
        await restart(queue, server)
        await until(lambda: queue.refusal() is None, "connected again")
        worker = Impostor(server)  # connected again too
        await send(worker, runs["kept"], Progress("kept", 2, 4, None))
        assert await next_of(queue, (Progress, Lost), 10) == Progress("kept", 2, 4, None)  # not 1 again
        assert len(await worker.redis.xpending_range(JOBS, GROUP, min="-", max="+", count=10)) == 1


async def test_redis_restored_from_an_older_copy_reads_its_events_from_the_start(tmp_path: Path, servers) -> None:
    """The copy's newest event id is below the cursor: the cursor goes back to 0 (its entries are all new). The
    copy has the middle one of three job entries: the jobs of the entries before and after it are lost."""
    server, older = servers("redis").start(), servers("older").start()
    async with backend(server) as queue:
        worker = Impostor(server)
        await worker.beat()
        await submit(queue, worker, job(tmp_path, "earlier"))
        entry, runs = await submit(queue, worker, job(tmp_path, "kept"))
        await submit(queue, worker, job(tmp_path, "later"))
        copy = older.client()
        await copy.xadd(JOBS, {"jobs": "the same entry"}, id=entry)  # the entry is in the copy: not lost
        await copy.xadd(EVENTS, {"run": runs["kept"], "event": to_json(Progress("kept", 2, 4, None))})
        await copy.aclose()
        await send(worker, runs["kept"], Progress("kept", 1, 4, None), FAR)
        assert (await next_of(queue, (Progress,), 10)).iteration == 1
        await restart(queue, server, older)
        assert [await next_of(queue, (Progress, Lost), 10) for _ in range(3)] == [
            Lost("earlier", RESTARTED), Lost("later", RESTARTED), Progress("kept", 2, 4, None)]
        again = older.client()  # the group is made from the stream's start: the copy's entry is handed over again
        assert (await again.xreadgroup(GROUP, "after", {JOBS: ">"}, count=1))[0][1][0][0].decode() == entry
        await again.aclose()


async def test_a_group_that_cannot_be_made_keeps_the_backend_down(servers) -> None:
    """A ResponseError other than BUSYGROUP (here: ``nst:jobs`` is not a stream) is not taken for success."""
    server, broken = servers("redis").start(), servers("broken").start()
    await broken.client().set(JOBS, "not a stream")
    async with backend(server) as queue:
        await restart(queue, server, broken)
        client = broken.client()

        async def tried_twice() -> bool:  # each try fails with WRONGTYPE
            stats = (await client.info("commandstats")).get("cmdstat_xgroup|create", {})
            return stats.get("failed_calls", 0) >= 2
        await until(tried_twice, "two tries to make the group")
        assert queue.refusal() is not None
        await client.delete(JOBS)
        await until(lambda: queue.refusal() is None, "connected once the key is gone")
        assert [group["name"] for group in await client.xinfo_groups(JOBS)] == [GROUP.encode()]


async def test_the_first_connection_after_redis_was_down_at_start(servers, caplog) -> None:
    """What an earlier run of this bot left is cleared then, as at a normal start; other bots' entries stay."""
    caplog.set_level(logging.INFO, QUEUE_LOG)
    server = servers("redis").start()
    earlier = server.client()
    await earlier.xadd(JOBS, {"jobs": "left by this bot", "bot": ""})
    other = (await earlier.xadd(JOBS, {"jobs": "another bot's", "bot": "shards-1"})).decode()
    await earlier.xadd(EVENTS, {"run": "old", "event": "{}"})
    await Impostor(server).beat()
    server.kill()
    async with backend(server) as queue:
        assert queue.refusal() is not None and queue.workers() == 0
        server.start()
        await until(lambda: queue.workers() == 1, "connected, the worker seen")
        client = server.client()
        assert [entry.decode() for entry, _ in await client.xrange(JOBS)] == [other]
        assert not await client.exists(EVENTS)
        assert [group["name"] for group in await client.xinfo_groups(JOBS)] == [GROUP.encode()]
        assert f"Redis at 127.0.0.1:{server.port}/0 is reachable again" in logged(caplog)


async def finished(queue: RedisWorkQueue, worker: Impostor, spec, result: bytes | None):
    """How the backend ends ``spec`` after its worker stored ``result`` (None: nothing) and reported it done."""
    _, runs = await submit(queue, worker, spec)
    if result is not None:
        await worker.redis.set(result_key(runs[spec.job_id]), result)
    await send(worker, runs[spec.job_id], Done(spec.job_id, 4, 1.0, width=64, height=43, output="x"))
    return await next_of(queue, (Done, Lost, Failed), 10)


async def test_a_result_gone_is_lost_and_one_refused_or_not_saved_failed(tmp_path: Path, queue, redis_server,
                                                                          caplog) -> None:
    worker = Impostor(redis_server)
    await worker.beat()
    assert await finished(queue, worker, job(tmp_path, "gone", size=64), None) == Lost(
        "gone", "its result expired in Redis before the bot could fetch it")
    outsize = b"\0" * (png_byte_cap(64) + 1)
    assert await finished(queue, worker, job(tmp_path, "outsize", size=64), outsize) == Failed("outsize", UNUSABLE)
    assert ("job outsize: its worker's result was refused: it is larger than 1 frame(s) of a 64-pixel PNG"
            in logged(caplog))
    unsaved = dataclasses.replace(job(tmp_path, "unsaved", size=64), result=str(tmp_path / "missing" / "r.png"))
    picture = hostile_files.encoded(hostile_files.noise(64, 43), "PNG")
    assert await finished(queue, worker, unsaved, picture) == Failed("unsaved", NOT_SAVED)
    partial = tmp_path / "missing" / ".r.png.part"
    assert f"job unsaved: cannot write its result: [Errno 2] No such file or directory: '{partial}'" in logged(caplog)


async def test_stop_requests_that_cannot_reach_redis_name_their_job(tmp_path: Path, queue, redis_server,
                                                                   caplog) -> None:
    """Cancel and abort while Redis is down: the log says which job the workers could not be told about."""
    caplog.set_level(logging.INFO, QUEUE_LOG)
    await queue.submit([job(tmp_path, "cancelled"), job(tmp_path, "aborted")])
    redis_server.kill()
    await until(lambda: queue.refusal() is not None, "the outage seen")
    await queue.cancel("cancelled")
    assert "could not ask the workers to stop job cancelled:" in caplog.text
    await queue.abort("aborted")
    assert "could not ask the workers to stop job aborted:" in caplog.text
    tidy = [line for line in logged(caplog) if line.startswith("could not tidy job aborted's keys in Redis: ")]
    assert len(tidy) == 1 and not tidy[0].endswith("None"), logged(caplog)
    assert (await next_of(queue, (Lost,), 5)).job == "aborted"


async def test_events_with_odd_fields_are_ignored_and_the_next_relayed(tmp_path: Path, queue, redis_server,
                                                                       caplog) -> None:
    """No run id, a run id that is not UTF-8, no event, an event of no job or of another job under the job's run:
    none breaks the relay; those under the job's run are logged for it."""
    caplog.set_level(logging.INFO, QUEUE_LOG)
    worker = Impostor(redis_server)
    await worker.beat()
    _, runs = await submit(queue, worker, job(tmp_path, "odd"))
    progress = to_json(Progress("odd", 1, 4, None))
    for fields in ({"event": progress}, {"run": b"\xff\xfe", "event": progress}, {"run": runs["odd"]}):
        await worker.redis.xadd(EVENTS, fields)
    await send(worker, runs["odd"], Ready("cpu", "impostor"))
    await send(worker, runs["odd"], Progress("other", 1, 4, None))
    await send(worker, runs["odd"], Progress("odd", 2, 4, None))
    assert await next_of(queue, (Progress,), 10) == Progress("odd", 2, 4, None)
    assert "ignoring a malformed worker event for job odd: b'event'" in logged(caplog)
    for named in ("None", "'other'"):
        assert f"ignoring an event that names job {named} under job odd's run" in logged(caplog)
    assert "could not handle a worker event" not in logged(caplog)


async def test_a_late_ending_of_a_superseded_run_asks_no_stop(tmp_path: Path, queue, redis_server) -> None:
    """Only a superseded run still computing (Started, Progress) is told to stop; its late Done needs nothing."""
    worker = Impostor(redis_server)
    await worker.beat()
    _, old = await submit(queue, worker, job(tmp_path, "old"))
    async with StopRequests(worker) as stops:
        await queue.abort("old")
        assert await stops.next() == old["old"] and (await next_of(queue, (Lost,), 5)).job == "old"
        await send(worker, old["old"], Done("old", 4, 1.0, width=64, height=43, output="x"))
        _, new = await submit(queue, worker, job(tmp_path, "new"))
        await send(worker, new["new"], Progress("new", 1, 4, None))
        assert (await next_of(queue, (Progress,), 10)).job == "new"  # so the late Done was handled before
        assert await stops.none_before_a_marker()


async def test_a_workers_start_cancel_and_failure_are_passed_on_as_sent(tmp_path: Path, queue, redis_server) -> None:
    worker = Impostor(redis_server)
    await worker.beat()
    _, runs = await submit(queue, worker, job(tmp_path, "stopped"), job(tmp_path, "refused"))
    sent = [("stopped", Started("stopped", "impostor")), ("stopped", Done("stopped", 2, 1.0, cancelled=True)),
            ("refused", Failed("refused", "Lower the size."))]
    for job_id, event in sent:
        await send(worker, runs[job_id], event)
    assert [await next_of(queue, (Started, Done, Failed, Lost), 10) for _ in sent] == [event for _, event in sent]
