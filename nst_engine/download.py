"""Resumable, verified, atomic downloads (standard library only, so it runs anywhere the engine does)."""

from __future__ import annotations

import hashlib
import http.client
import os
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
        time.sleep(min(0.2 * 2**attempt, 5.0))
    else:
        raise DownloadError(f"Could not download {url}: {_reason(last_error)}. Run the command again to resume.")
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


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__
