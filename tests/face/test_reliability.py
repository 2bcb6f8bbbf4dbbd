"""Reliability, end to end against the stand-in with the real bot and engine processes: crashes of either
process, Discord errors and reconnects, a burst of requests, and a corpus of malformed images.

Run with ``-s`` to see the figures each test prints.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.face.discord_standin import ALICE, BOB, CAROL, StandinThread, user
from tests.face.harness import (TOKEN, BotProcess, bomb_png, callback, custom_id, decoded, deliveries, engine_pid,
                               job_id, png_bytes, result_message, status_message, stylize, wait_delivered,
                               wait_original, wait_status)
from tests.conftest import make_content, make_style

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

USERS = [user(710000000000000000 + n, f"user{n}") for n in range(20)]
LIMIT_REASONS = ("You already have", "The queue is full", "Please wait")


BOT_CONFIG = {"engine": "job_timeout = 20.0", "limits": {"max_queue": 10, "max_jobs_per_user": 2}}


def wait_running(standin: StandinThread, status: dict[str, Any]) -> None:
    wait_status(standin, int(status["id"]), "iteration", timeout=90)


def test_bot_killed_with_jobs_queued_and_running_delivers_each_once(bot: BotProcess, standin: StandinThread,
                                                                    workdir: Path) -> None:
    running = stylize(standin, ALICE, quality="medium")
    running_status = status_message(standin, running)
    wait_running(standin, running_status)
    queued = [stylize(standin, who, quality="fast") for who in (BOB, CAROL, USERS[0])]
    jobs = [job_id(running_status)] + [job_id(status_message(standin, token)) for token in queued]
    old_engine = engine_pid(bot)

    bot.stop(signal.SIGKILL)
    # The orphaned engine process notices its pipe closing and exits within an iteration.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{old_engine}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{old_engine}").exists(), "the engine process outlived the killed bot"

    restarted = time.monotonic()
    bot.start().wait_ready()
    assert "resuming 4 job(s) from the store" in bot.output()
    for job in jobs:
        wait_delivered(standin, job)
    time.sleep(1)
    counts = {job: len(deliveries(standin, job)) for job in jobs}
    print(f"\nSIGKILL with 1 running + 3 queued: deliveries per job {list(counts.values())}, "
          f"all delivered {time.monotonic() - restarted:.1f} s after the restart began")
    assert list(counts.values()) == [1, 1, 1, 1]
    for job in jobs:  # resumed jobs have no interaction token: results go to the channel, mentioning the user
        assert deliveries(standin, job)[0]["content"].startswith("<@")
    assert "Done" in standin.message(int(running_status["id"]))["content"]


def test_a_result_posted_just_before_a_crash_is_not_posted_again(bot: BotProcess, standin: StandinThread,
                                                                workdir: Path) -> None:
    token = stylize(standin, BOB, quality="fast")
    job = job_id(status_message(standin, token))
    wait_delivered(standin, job)
    bot.stop(signal.SIGKILL)
    # Rewind the store to the moment after posting and before recording it.
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET state = 'running', result_message_id = NULL WHERE id = ?", (job,))
    bot.start().wait_ready()
    bot.wait_until(f"job {job} was already delivered")
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:
        state, message = db.execute("SELECT state, result_message_id FROM jobs WHERE id = ?", (job,)).fetchone()
    assert state == "done" and message == int(deliveries(standin, job)[0]["id"])
    assert len(deliveries(standin, job)) == 1


def test_engine_killed_while_idle_is_restarted_for_the_next_job(bot: BotProcess, standin: StandinThread) -> None:
    pid = engine_pid(bot)
    os.kill(pid, signal.SIGKILL)
    standin.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the engine process to die")
    token = stylize(standin, USERS[3], quality="fast")
    assert result_message(standin, token)
    assert "the engine process is gone; restarting it" in bot.output() and engine_pid(bot) != pid


def job_row(workdir: Path, job: str) -> tuple[str, int]:
    with sqlite3.connect(workdir / "data" / "jobs.sqlite3") as db:
        return db.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job,)).fetchone()


def test_engine_killed_mid_job_is_retried_once_then_failed(bot: BotProcess, standin: StandinThread,
                                                           workdir: Path) -> None:
    token = stylize(standin, ALICE, quality="medium")
    status = status_message(standin, token)
    wait_running(standin, status)
    os.kill(engine_pid(bot), signal.SIGKILL)
    job = job_id(status)
    wait_delivered(standin, job)
    assert f"engine process died during job {job}" in bot.output()
    assert len(deliveries(standin, job)) == 1

    token = stylize(standin, BOB, quality="slow")
    status = status_message(standin, token)
    job = job_id(status)
    for attempt in (1, 2):
        standin.wait_for(lambda: job_row(workdir, job) == ("running", attempt), 60, f"attempt {attempt} to run")
        time.sleep(0.5)
        os.kill(engine_pid(bot), signal.SIGKILL)
    final = wait_status(standin, int(status["id"]), "❌")["content"]
    assert "The engine stopped unexpectedly" in final and job_row(workdir, job) == ("failed", 2)
    after = stylize(standin, CAROL, quality="fast")
    assert result_message(standin, after)  # the restarted engine serves the next job


def test_a_job_over_the_time_limit_is_stopped_and_failed(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, CAROL, quality="slow", size=64)
    token_status = status_message(standin, token)
    wait_running(standin, token_status)
    stuck = engine_pid(bot)
    os.kill(stuck, signal.SIGSTOP)  # an engine that makes no progress, however fast this machine is
    final = wait_status(standin, int(token_status["id"]), "❌", timeout=120)["content"]
    assert "took longer than the time limit (20s)" in final
    standin.wait_for(lambda: not Path(f"/proc/{stuck}").exists()
                     or "zombie" in Path(f"/proc/{stuck}/status").read_text(), 30, "the stuck engine to be killed")
    assert result_message(standin, stylize(standin, CAROL, quality="fast"))


def test_discord_errors_on_progress_edits_never_fail_the_job(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, USERS[1], quality="medium")
    status = status_message(standin, token)
    wait_running(standin, status)
    edits = rf"/webhooks/\d+/{token}/messages/{status['id']}$"
    standin.fail("PATCH", edits, 500, times=2)  # discord.py retries server errors
    standin.fail("PATCH", edits, 429)  # and waits out rate limits
    standin.wait_for(lambda: not standin.call(lambda: standin.standin.failures), 30, "the injected errors to be hit")
    standin.fail("PATCH", edits, 404, code=10008)  # the status message was deleted
    standin.drop_connections()  # and the gateway drops, too
    job = job_id(status)
    result = wait_delivered(standin, job)

    def status_messages() -> list[dict]:
        return [m for m in standin.followups(token) if "nst:cancel" in str(m["components"]) or "medium (" in m["content"]]

    # The final status edit follows the delivery (after the store has the job done): wait for it, not race it.
    standin.wait_for(lambda: "Done" in status_messages()[-1]["content"], 30, "the final status edit")
    statuses = status_messages()
    print(f"\nDiscord trouble: {len(standin.records('injected-failure'))} injected failures, "
          f"{len(statuses)} status messages, {len(deliveries(standin, job))} delivery")
    assert len(deliveries(standin, job)) == 1 and result["content"].startswith(f"<@{USERS[1]['id']}>")
    assert len(statuses) == 2  # the deleted status message was posted anew
    assert "Done" in statuses[-1]["content"]
    standin.wait_for(lambda: standin.records("resume"), 60, "the bot to resume its gateway session")
    assert result_message(standin, stylize(standin, USERS[1], quality="fast"))  # still serving after the reconnect


def test_an_interaction_delivered_twice_makes_one_job(bot: BotProcess, standin: StandinThread) -> None:
    token = stylize(standin, USERS[2], quality="fast")
    wait_original(standin, token, "Queued")
    standin.redeliver(token)
    refused = standin.wait_for(lambda: len(standin.records("callback", token)) == 2, 10, "the replayed callback")
    assert refused and standin.records("callback", token)[1].status == 400
    result = result_message(standin, token)
    bot.wait_until(f"interaction {standin.original(token)['interaction_metadata']['id']} was already answered")
    assert len(deliveries(standin, custom_id(result, "nst:again:").split(":")[2])) == 1
    assert len(standin.followups(token)) == 2  # one status message, one result


def test_a_burst_of_fifty_requests_from_twenty_users(bot: BotProcess, standin: StandinThread) -> None:
    began = time.monotonic()
    tokens = [(who, stylize(standin, who, quality="fast")) for index, who in enumerate(USERS)
              for _ in range(3 if index < 10 else 2)]
    assert len(tokens) == 50
    outcomes: dict[str, str] = {}
    for _, token in tokens:
        outcomes[token] = standin.wait_for(lambda: (t := original_or_none(standin, token)) and
                                           ("Queued" in t or "⚠️" in t) and t, 60, "an answer")
    accepted = [token for token, text in outcomes.items() if "Queued" in text]
    refused = {token: text for token, text in outcomes.items() if "⚠️" in text}
    reasons = Counter(next((r for r in LIMIT_REASONS if r in text), text) for text in refused.values())
    positions = [int(re.search(r"position \*\*(\d+)\*\*", outcomes[token]).group(1)) for token in accepted]
    results = [result_message(standin, token, timeout=180) for token in accepted]
    jobs = [custom_id(result, "nst:again:").split(":")[2] for result in results]
    counts = Counter(len(deliveries(standin, job)) for job in jobs)
    print(f"\nburst: 50 requests from 20 users → {len(accepted)} accepted, {len(refused)} refused "
          f"({dict(reasons)}); highest position {max(positions)}; deliveries per accepted job {dict(counts)}; "
          f"all done in {time.monotonic() - began:.1f} s")
    assert len(accepted) + len(refused) == 50 and accepted and refused
    assert set(reasons) <= set(LIMIT_REASONS)
    assert max(positions) <= 10
    assert counts == Counter({1: len(jobs)})
    assert all(not standin.followups(token) for token in refused)


def original_or_none(standin: StandinThread, token: str) -> str | None:
    message = standin.original(token)
    return message["content"] if message else None


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def malformed_corpus() -> list[tuple[str, bytes, str | None, str]]:
    """(name, bytes, content type, expected): expected is "accepted" or a phrase of the refusal."""
    picture = make_content()
    frames = [make_style(64, seed=s) for s in range(3)]
    sixteen = Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))
    palette = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    rotated = Image.new("RGB", (96, 64), "navy")
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    small_gif = encoded(Image.new("P", (2, 2)), "GIF")
    gif_huge = small_gif[:6] + struct.pack("<HH", 65535, 65535) + small_gif[10:]  # the logical screen size
    return [
        ("truncated PNG", png_bytes(picture)[:400], "image/png", "corrupt"),
        ("wrong magic", b"\x00\x01garbage" * 50, "image/png", "not an image that can be read"),
        ("zero-size", b"", "image/png", "empty file"),
        ("huge dimensions (GIF header)", gif_huge, "image/gif", "too large"),
        ("decompression bomb (PNG)", bomb_png(40000, 40000), "image/png", "too large"),
        ("pixel cap (PNG 3000×2000)", bomb_png(3000, 2000), "image/png", "too large"),
        ("SVG", b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>", "image/svg+xml", "SVG"),
        ("HTML", b"<!doctype html><html><body>hi</body></html>", "text/html", "is not an image"),
        ("HTML labelled as PNG", b"<!doctype html><html><body>hi</body></html>", "image/png",
         "not an image that can be read"),
        ("long and thin", png_bytes(Image.new("RGB", (2000, 20), "red")), "image/png", "too long and thin"),
        ("animated GIF", encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), "image/gif", "accepted"),
        ("animated WebP", encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:]), "image/webp",
         "accepted"),
        ("16-bit greyscale PNG", png_bytes(sixteen), "image/png", "accepted"),
        ("CMYK JPEG", encoded(picture.convert("CMYK"), "JPEG"), "image/jpeg", "accepted"),
        ("palette PNG with transparency", png_bytes(palette), "image/png", "accepted"),
        ("greyscale with alpha", png_bytes(picture.convert("LA")), "image/png", "accepted"),
        ("1×1 pixel", png_bytes(Image.new("RGB", (1, 1), "white")), "image/png", "accepted"),
        ("TIFF", encoded(picture, "TIFF"), "image/tiff", "accepted"),
        ("no content type", png_bytes(picture), None, "accepted"),
        ("EXIF-rotated JPEG", encoded(rotated, "JPEG", exif=exif), "image/jpeg", "accepted"),
    ]


def test_a_corpus_of_malformed_images_is_handled_cleanly(bot: BotProcess, standin: StandinThread) -> None:
    corpus = malformed_corpus()
    style = standin.attachment("style.png", png_bytes(make_style()))
    outcomes = []
    for index, (name, data, content_type, expected) in enumerate(corpus):
        content = standin.attachment(f"input-{index}.bin", data, content_type)
        token = standin.command("stylize", {"content": content, "style": style, "quality": "fast"}, USERS[index])
        reply = standin.wait_for(lambda: (t := original_or_none(standin, token)) and ("Queued" in t or "⚠️" in t)
                                 and t, 60, f"an answer for {name}")
        if expected == "accepted":
            assert "Queued" in reply, f"{name}: {reply}"
            result = decoded(standin, result_message(standin, token)["attachments"][0])
            assert max(result.size) == 48, name
            outcomes.append((name, f"stylized {result.width}×{result.height}"))
        else:
            assert "⚠️" in reply and expected in reply, f"{name}: {reply}"
            outcomes.append((name, "refused: " + reply.removeprefix("⚠️ ")[:90]))
    rotated = next(o for n, o in outcomes if n == "EXIF-rotated JPEG")
    assert rotated == "stylized 32×48"  # upright, as phones show it
    print("\nmalformed corpus:\n" + "\n".join(f"  {name:32} {outcome}" for name, outcome in outcomes))
    assert callback(standin, standin.command("help"))["type"] == 4  # and still serving


def test_the_token_never_appears_in_the_logs_of_the_full_run(bot: BotProcess, standin: StandinThread) -> None:
    log = bot.output()
    assert "connected as" in log and TOKEN not in log
    assert all(TOKEN not in (m.get("content") or "") for m in standin.messages())
