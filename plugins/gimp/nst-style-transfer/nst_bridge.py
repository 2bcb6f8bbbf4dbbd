"""Talks to nst-bot's engine in nst-bot's own environment, from a Python that has no torch (GIMP's).

Why a subprocess of ``nst-bot stylize --progress json`` rather than a local service: one run is one process,
so there is no port to secure, no server to start or stop, and cancelling is ending that process. The cost is a
few seconds of start-up per run (importing torch, loading VGG19) against minutes of optimisation. The child is tied to this process
(Linux ``PR_SET_PDEATHSIG``), because GIMP cancels a plug-in by killing it and the engine must not live on.

This module uses only the standard library and knows nothing about GIMP, so it is tested on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Mapping

EXECUTABLE_ENV = "NST_BOT"


class BridgeError(Exception):
    """A problem worth one line in GIMP's error console (nst-bot's own message where it gave one)."""


class Cancelled(Exception):
    """The user stopped the run."""


def find_executable() -> str:
    """``$NST_BOT``, else ``nst-bot`` on PATH, else ``~/.local/bin/nst-bot``."""
    configured = os.environ.get(EXECUTABLE_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            raise BridgeError(f"{EXECUTABLE_ENV}={configured} is not an executable nst-bot")
        return configured
    found = shutil.which("nst-bot") or shutil.which("nst-bot", path=str(Path.home() / ".local" / "bin"))
    if found is None:
        raise BridgeError(f"nst-bot was not found: install it, or set {EXECUTABLE_ENV} to its path "
                          "(for example in GIMP's environ folder)")
    return found


def read_options(executable: str) -> list[dict]:
    """The engine's user options (name, type, default, low, high, choices, help) from ``nst-bot options``."""
    return json.loads(_run_quick(executable, "options"))


def read_presets(executable: str) -> list[str]:
    """Preset names from ``nst-bot presets`` (the first word of each listed preset)."""
    lines = _run_quick(executable, "presets").splitlines()
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("No presets")]


def stylize(executable: str, content: Path, output: Path, *, style: Path | None = None, preset: str | None = None,
            options: Mapping[str, object], on_progress: Callable[[dict], bool]) -> dict:
    """Run one stylize; ``on_progress`` gets each progress event and returns False to cancel.

    Returns nst-bot's final ``done`` event; raises :class:`Cancelled` or :class:`BridgeError`.
    """
    if (style is None) == (preset is None):
        raise BridgeError("choose either a style image or a preset")
    command = [executable, "stylize", str(content), "-o", str(output), "--progress", "json"]
    command += ["--style", str(style)] if style is not None else ["--preset", preset]
    for name, value in options.items():
        command += ["--" + name.replace("_", "-"), str(value)]
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True,
                                 preexec_fn=_end_with_parent)
        done = None
        try:
            for line in child.stdout:
                if not line.startswith("{"):
                    continue  # not an event (a library's warning printed to stdout)
                event = json.loads(line)
                if event["event"] == "done":
                    done = event
                elif not on_progress(event):
                    raise Cancelled()
        finally:
            if child.poll() is None and done is None:
                child.terminate()
            child.stdout.close()
            status = child.wait()
        if status != 0 or done is None:
            errors.seek(0)
            raise BridgeError(_last_line(errors.read()) or f"nst-bot stopped with status {status}")
    return done


def _run_quick(executable: str, *arguments: str) -> str:
    try:
        finished = subprocess.run([executable, *arguments], capture_output=True, text=True, timeout=120)
    except OSError as error:
        raise BridgeError(f"cannot run {executable}: {error.strerror}") from None
    if finished.returncode != 0:
        raise BridgeError(_last_line(finished.stderr) or f"{executable} {arguments[0]} failed")
    return finished.stdout


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("nst-bot: error: ") if lines else ""


def _end_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the plug-in process dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
