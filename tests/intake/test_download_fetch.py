"""fetch_image and fetch_picture end to end against a real HTTP server on loopback and the real sandboxed decoder
pool (found by mutation testing, docs/mutation-report.md): what each HTTP answer becomes, the byte cap at its
edge, the caps the decoder is asked to apply, thinned animations, and the reply for each kind of failure."""

from __future__ import annotations

import asyncio
import logging
import re
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.config import BotConfig, Config, LimitsConfig
from bot.intake.decode_budget import DecodeBudget
from bot.intake import decoder as decoders
from bot.intake import download
from bot.intake.decoder import DecoderPool, close_shared_pool
from bot.intake.download import RequestError, check_attachment, fetch_image, fetch_picture
from nst_engine.animation import Animation
from tests.intake import animated_files, hostile_files

pytestmark = pytest.mark.timeout(120)

CAP = 2_000_000
PHOTO = hostile_files.encoded(hostile_files.noise(300, 200), "PNG")
AT_CAP = PHOTO + bytes(CAP - len(PHOTO))  # a PNG with padding after its end: Pillow reads it, it is CAP bytes


@pytest.fixture
async def server():
    """A file server whose paths answer as named; yields (session, base URL)."""
    bodies = {"/photo.png": PHOTO, "/at-cap.png": AT_CAP, "/over-cap.png": AT_CAP + b"\0", "/empty.png": b"",
              "/wide.png": hostile_files.encoded(hostile_files.noise(700, 20), "PNG"),
              "/frames.gif": animated_files.many_frame_gif(10),
              "/ball.gif": animated_files.ball_gif(frames=3, size=(96, 64))[0]}

    released = asyncio.Event()

    async def serve(request: web.Request) -> web.Response:
        if request.path == "/stalled.png":  # answers nothing until the test is over
            await released.wait()
        if request.path.startswith("/status/"):
            return web.Response(status=int(request.path.rsplit("/", 1)[1]), headers={"Location": "/photo.png"})
        return web.Response(body=bodies[request.path], content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{runner.addresses[0][1]}"
    released.set()
    await runner.cleanup()


@pytest.fixture
async def pool():
    decoders = DecoderPool(workers=1, time_limit=20)
    yield decoders
    await decoders.close()


def config(base: str, **limits: int) -> Config:
    return Config(bot=BotConfig(allowed_attachment_hosts=(base,)),
                  limits=LimitsConfig(**{"max_upload_bytes": CAP, "max_size": 64, **limits}))


def upload(url: str, filename: str = "photo.png", size: int = 1000) -> SimpleNamespace:
    return SimpleNamespace(url=url, filename=filename, size=size, content_type="image/png")


async def refusal(session, base: str, path: str, pool: DecoderPool, **limits: int) -> str:
    with pytest.raises(RequestError) as refused:
        await fetch_image(session, upload(base + path), config(base, **limits), "content image", decoder=pool)
    return str(refused.value)


async def test_a_picture_is_decoded_at_most_twice_the_largest_output(server, pool) -> None:
    session, base = server
    image = await fetch_image(session, upload(base + "/photo.png"), config(base), "content image", decoder=pool)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (128, 85)


async def test_the_byte_cap_allows_exactly_the_limit(server, pool) -> None:
    session, base = server
    image = await fetch_image(session, upload(base + "/at-cap.png"), config(base), "content image", decoder=pool)
    assert image.size == (128, 85)
    assert await refusal(session, base, "/over-cap.png", pool) == "The content image is larger than the 2.0 MB limit."


async def test_each_http_answer_gets_its_own_reply(server, pool, caplog: pytest.LogCaptureFixture) -> None:
    session, base = server
    caplog.set_level(logging.WARNING, logger="bot.intake.download")
    moved = "The content image link pointed somewhere else, so it was not downloaded; please upload the file again."
    for status in (300, 301, 307, 399):
        assert await refusal(session, base, f"/status/{status}", pool) == moved, status
    assert caplog.messages[-1] == "attachment URL for the content image redirected (HTTP 399); not followed"
    for status in (204, 400, 404, 500):
        assert await refusal(session, base, f"/status/{status}", pool) == (
            f"Could not download the content image (HTTP {status}); please upload it again."), status
    assert await refusal(session, base, "/empty.png", pool) == "The content image is an empty file."


async def test_an_unreachable_server_is_a_download_failure(pool) -> None:
    async with aiohttp.ClientSession() as session:
        closed = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback here
        assert await refusal(session, closed, "/photo.png", pool) == (
            "Could not download the content image; please try again.")


async def test_the_decoders_caps_are_the_configs(server, pool) -> None:
    session, base = server
    assert await refusal(session, base, "/photo.png", pool, max_pixels=50_000) == (
        "The content image is too large: 300×200 pixels; the limit is 0.05 megapixels.")
    assert (await refusal(session, base, "/wide.png", pool)).startswith("The content image is too long and thin (700×20)")


async def test_an_animation_keeps_the_frame_cap_and_side_and_says_what_was_cut(server, pool) -> None:
    session, base = server
    thinned = config(base, max_frames=4)
    picture, notes = await fetch_picture(session, upload(base + "/frames.gif"), thinned, "content",
                                         thinned.limits.animation_caps("standard"), decoder=pool)
    assert isinstance(picture, Animation) and picture.frame_count == 4
    assert notes == ["animation thinned to 4 of its 10 frames, spread evenly with the timing kept (this bot "
                     "stylises at most 4 frames at standard quality)"]
    small = config(base, max_animation_size=48)
    picture, notes = await fetch_picture(session, upload(base + "/ball.gif"), small, "content",
                                         small.limits.animation_caps("standard"), decoder=pool)
    assert isinstance(picture, Animation) and (picture.frame_count, picture.size, notes) == (3, (48, 32), [])
    still = await fetch_image(session, upload(base + "/ball.gif"), small, "content", decoder=pool)
    assert isinstance(still, Image.Image) and still.size == (96, 64)  # a still: up to twice the largest output


async def test_each_requesters_decodes_count_against_their_budget(server) -> None:
    session, base = server
    spent = DecoderPool(workers=1, time_limit=20, budget=DecodeBudget(1e-9, 600))  # one decode spends it
    try:
        for requester in (None, None, 5):
            await fetch_image(session, upload(base + "/photo.png"), config(base), "content image", decoder=spent,
                              requester=requester)
        with pytest.raises(RequestError, match="^Your recent uploads took"):
            await fetch_image(session, upload(base + "/photo.png"), config(base), "content image", decoder=spent,
                              requester=5)
    finally:
        await spent.close()


async def test_a_stalled_download_is_given_up_after_the_download_timeout(server, pool, monkeypatch) -> None:
    session, base = server
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT", 0.5)  # 30 s in the bot
    assert await refusal(session, base, "/stalled.png", pool) == "Could not download the content image; please try again."


async def test_without_a_pool_given_the_bots_shared_pool_decodes_with_the_configs_limits(server) -> None:
    session, base = server
    await close_shared_pool()
    try:
        image = await fetch_image(session, upload(base + "/photo.png"), config(base, decode_seconds=7), "content image")
        assert image.size == (128, 85) and decoders._shared_pool.time_limit == 7
    finally:
        await close_shared_pool()


async def test_a_decoder_that_cannot_run_is_a_try_again_later(server, caplog: pytest.LogCaptureFixture) -> None:
    session, base = server
    closed = DecoderPool(workers=1)
    await closed.close()
    assert await refusal(session, base, "/photo.png", closed) == (
        "The content image could not be processed right now; please try again in a minute.")
    assert caplog.messages[-1] == "cannot decode the content image: the bot is shutting down"


class BrokenDecoder:
    """A decoder with a bug (no real one is known to fail this way on demand): the member still gets a reply."""

    async def decode_counted(self, data: bytes, request: object) -> None:
        raise TypeError("a bug deep in a decoder")


async def test_a_bug_while_taking_in_an_upload_is_logged_in_full_and_still_answered(server, caplog) -> None:
    session, base = server
    assert await refusal(session, base, "/photo.png", BrokenDecoder()) == (
        "The content image could not be processed; please try again.")
    [record] = [record for record in caplog.records if record.name == "bot.intake.download"]
    assert record.getMessage() == "unexpected failure while taking in the content image"
    assert record.exc_info[0] is TypeError


async def test_what_an_upload_is_named_in_the_checks_before_download(server, pool) -> None:
    session, base = server
    page = SimpleNamespace(url=base + "/photo.png", filename="page.html", size=1000, content_type="text/html")
    with pytest.raises(RequestError, match=re.escape("The style image `page.html` is not an image (text/html)")):
        await fetch_image(session, page, config(base), "style image", decoder=pool)
    large = upload(base + "/photo.png", size=1_050_000)  # declared 1.05 MB: shown as 1.1 (decimal megabytes)
    with pytest.raises(RequestError, match=re.escape("The style image is 1.1 MB; the limit is 1.0 MB.")):
        await fetch_image(session, large, config(base, max_upload_bytes=1_000_000), "style image", decoder=pool)


def test_a_file_name_in_a_reply_is_escaped_and_cut_to_60_characters() -> None:
    name = "*bold*_" + "x" * 60 + ".html"
    wrong = SimpleNamespace(url="https://cdn.discordapp.com/a", filename=name, size=10, content_type="text/html")
    with pytest.raises(RequestError, match=re.escape(f"`\\*bold\\*\\_{'x' * 53}` is not an image (text/html)")):
        check_attachment(wrong, Config(), "style image")
