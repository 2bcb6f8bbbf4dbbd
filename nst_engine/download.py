"""Resumable, verified, atomic downloads (standard library only, so it runs anywhere the engine does)."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .errors import DownloadError

ProgressHook = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)
CHUNK = 1 << 16


def download(url: str, dest: Path, *, sha256: str | None = None, sha256_prefix: str | None = None,
             progress: ProgressHook | None = None, attempts: int = 4, timeout: float = 60.0) -> str:
    """Fetch ``url`` into ``dest`` and return the file's SHA-256.

    Bytes go to ``dest.part`` first; an interrupted transfer resumes from there with an HTTP Range request
    (also across runs). The file is moved into place only after its checksum verifies, so ``dest`` is never a
    partial or unverified file. A checksum mismatch deletes the partial file and raises.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(attempts):
        try:
            if _fetch_into(url, part, progress, timeout):
                break
            last_error = DownloadError(f"the connection closed early after {part.stat().st_size} bytes")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            last_error = error
            if _permanent(error):
                raise DownloadError(f"Could not download {url}: {_reason(error)}.") from None
        time.sleep(min(0.2 * 2**attempt, 5.0))
    else:
        kept = part.stat().st_size if part.exists() else 0
        resume = f" {kept / 1e6:.1f} MB are kept: run the command again to resume." if kept else ""
        raise DownloadError(f"Could not download {url}: {_reason(last_error)}.{resume}")
    digest = sha256_file(part)
    expected = (sha256 or sha256_prefix or "").lower()
    if expected and not digest.startswith(expected):
        part.unlink(missing_ok=True)
        raise DownloadError(f"The download of {url} is corrupt (SHA-256 {digest[:16]}…, expected {expected[:16]}…); "
                            "the partial file was deleted, run the command again.")
    os.replace(part, dest)
    return digest


def _fetch_into(url: str, part: Path, progress: ProgressHook | None, timeout: float) -> bool:
    """Append the rest of ``url`` to ``part``; True when the server's announced length was reached."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "nst-bot", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # we already have every byte
            return True
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with part.open("ab" if have else "wb") as out:
            received = have
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                if progress:
                    progress(received, total)
    return total is None or received >= total


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _permanent(error: Exception) -> bool:
    """A client error (404, 403, …) that asking again will not change; 408 and 429 are worth a retry."""
    return isinstance(error, urllib.error.HTTPError) and 400 <= error.code < 500 and error.code not in (408, 429)


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        missing = " (there is no file at that address)" if error.code in (404, 410) else ""
        return f"the server answered HTTP {error.code} {error.reason}{missing}"
    return network_reason(error.reason if isinstance(error, urllib.error.URLError) else error)


def network_reason(reason: BaseException | str | None) -> str:
    """One short phrase for a failed connection, without the socket library's wording (also for the bot's
    connection to Discord)."""
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve (is this machine offline, or without DNS?)"
    if isinstance(reason, ConnectionRefusedError):
        return "the server refused the connection"
    if isinstance(reason, TimeoutError):
        return "the server did not answer in time"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason or "") or type(reason).__name__
