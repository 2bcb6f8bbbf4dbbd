"""Downloads and `fetch-assets` against a real aiohttp server on loopback serving generated files."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
import torch
from aiohttp import web

from nst_engine.download import download
from nst_engine.errors import DownloadError
from nst_engine.weights import CACHE_FILE, cache_dir, verify_cache


class FileServer:
    """Serves named byte strings with Range support; can cut the first N responses short or corrupt bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate_next = 0
        self.corrupt = False
        self.requests: list[str | None] = []
        self.misses = 0  # requests for files it does not have (answered 404)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.match_info["name"])
        if data is None:
            self.misses += 1
            return web.Response(status=404)
        self.requests.append(request.headers.get("Range"))
        start = int(request.headers["Range"][6:-1]) if "Range" in request.headers else 0
        body = data[start:]
        if self.corrupt:
            body = bytes(b ^ 0x55 for b in body[:64]) + body[64:]
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(body)
        await response.prepare(request)
        if self.truncate_next:
            self.truncate_next -= 1
            await response.write(body[: len(body) // 3])
            request.transport.close()  # the connection drops mid-transfer
            return response
        await response.write(body)
        await response.write_eof()
        return response

    def start(self) -> "FileServer":
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        self._runner = web.AppRunner(app)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._runner.setup(), self._loop).result()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), self._loop).result()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


@pytest.fixture()
def server():
    running = FileServer().start()
    yield running
    running.stop()


PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


def test_download_verifies_and_reports_progress(server, tmp_path):
    server.files["blob.bin"] = PAYLOAD
    seen: list[tuple[int, int | None]] = []
    digest = download(server.url("blob.bin"), tmp_path / "blob.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                      progress=lambda got, total: seen.append((got, total)))
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD and digest == hashlib.sha256(PAYLOAD).hexdigest()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 1
    assert not (tmp_path / "blob.bin.part").exists()


def test_truncated_transfer_resumes_with_range(server, tmp_path):
    server.files["blob.bin"] = PAYLOAD
    server.truncate_next = 2
    download(server.url("blob.bin"), tmp_path / "blob.bin", sha256_prefix=hashlib.sha256(PAYLOAD).hexdigest()[:8])
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert server.requests[0] is None and all(r and r.startswith("bytes=") for r in server.requests[1:])
    assert len(server.requests) == 3


def test_a_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    server.files["blob.bin"] = PAYLOAD
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:1000])
    download(server.url("blob.bin"), tmp_path / "blob.bin")
    assert server.requests == ["bytes=1000-"]
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_corrupted_download_is_deleted_and_reported(server, tmp_path):
    server.files["blob.bin"] = PAYLOAD
    server.corrupt = True
    with pytest.raises(DownloadError, match="is corrupt"):
        download(server.url("blob.bin"), tmp_path / "blob.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_a_404_is_reported_at_once_without_a_resume_hint(server, tmp_path):
    with pytest.raises(DownloadError) as error:
        download(server.url("missing.bin"), tmp_path / "x", attempts=4)
    assert "HTTP 404" in str(error.value) and "no file at that address" in str(error.value)
    assert "resume" not in str(error.value)
    assert server.misses == 1  # asking again would not change the answer
    assert not (tmp_path / "x.part").exists()


def test_a_transfer_cut_short_every_time_keeps_its_bytes_and_says_resume(server, tmp_path):
    server.files["blob.bin"] = PAYLOAD
    server.truncate_next = 10
    with pytest.raises(DownloadError, match="closed early.*MB are kept: run the command again to resume"):
        download(server.url("blob.bin"), tmp_path / "y", attempts=2)
    assert (tmp_path / "y.part").stat().st_size > 0  # kept for the next run to resume


def test_an_unreachable_server_gets_a_short_reason_and_no_resume_hint(tmp_path):
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError) as error:
        download(f"http://127.0.0.1:{port}/vgg19.pth", tmp_path / "z", attempts=2)
    assert str(error.value) == f"Could not download http://127.0.0.1:{port}/vgg19.pth: the server refused the connection."


@pytest.fixture(scope="module")
def full_vgg19(tmp_path_factory) -> tuple[bytes, str]:
    """A full-model (classifier included) random VGG19 file, named like torchvision's: vgg19-<sha prefix>.pth."""
    from nst_engine.testing import write_random_vgg19

    path = write_random_vgg19(tmp_path_factory.mktemp("full") / "vgg19.pth", seed=5, full_model=True)
    data = path.read_bytes()
    return data, f"vgg19-{hashlib.sha256(data).hexdigest()[:8]}.pth"


def test_fetch_assets_installs_verified_features(server, isolated_cache, full_vgg19, monkeypatch, capsys):
    from bot.ops.assets import fetch_weights

    data, name = full_vgg19
    server.files[name] = data
    server.truncate_next = 1
    target = fetch_weights(server.url(name))
    assert target == cache_dir() / CACHE_FILE and verify_cache()
    state = torch.load(target, weights_only=True)
    assert "classifier.0.weight" not in state and "features.28.weight" in state and "features.30.weight" not in state
    assert not (cache_dir() / name).exists()  # the 548 MB original is not kept
    assert 50e6 < target.stat().st_size < 55e6
    # A second run finds the verified cache and downloads nothing.
    before = len(server.requests)
    fetch_weights(server.url(name))
    assert len(server.requests) == before
    assert "already in the cache" in capsys.readouterr().out


def test_fetch_assets_refuses_a_file_whose_hash_does_not_match_its_name(server, isolated_cache, full_vgg19):
    from bot.ops.assets import fetch_weights

    data, _ = full_vgg19
    server.files["vgg19-00000000.pth"] = data
    with pytest.raises(DownloadError, match="is corrupt"):
        fetch_weights(server.url("vgg19-00000000.pth"))
    assert not (cache_dir() / CACHE_FILE).exists()


def test_a_failed_weights_download_names_the_offline_routes(server, isolated_cache):
    from bot.ops.assets import fetch_weights

    with pytest.raises(DownloadError) as error:
        fetch_weights(server.url("vgg19-dcbb9e9d.pth"))
    message = str(error.value)
    assert "HTTP 404" in message and "resume" not in message
    for route in ("NST_WEIGHTS", "`[engine] weights`", "`[engine] weights_url`", "NST_WEIGHTS_URL", "mirror"):
        assert route in message
