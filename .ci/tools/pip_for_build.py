"""This machine's pip setup, made available to ``RUN pip install`` inside a buildah build without baking it in.

Writes one pip.conf merging pip's configuration files and ``PIP_*`` environment (the build container sees
neither), and prints one buildah ``-v`` mount per line: that file as the container's /etc/pip.conf, plus every
local path it names (certificate bundle, constraints, find-links folders, file:// indexes), read-only.
With ``--cpu-torch PYTAG``, prints instead the pinned requirements for a CPU torch wheel found in the local
find-links folders (``torch==X.Y.Z+cpu torchvision==0.(Y+15).*``), or nothing when there is none.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

PATH_KEYS = ("cert", "client-cert", "constraint", "requirement", "find-links", "index-url", "extra-index-url")


def pip_settings(python: str) -> dict[str, str]:
    """``pip config list`` (files, later overriding earlier), then ``PIP_*`` variables, as global keys."""
    listed = subprocess.run([python, "-m", "pip", "config", "list"], check=True, capture_output=True, text=True)
    settings: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.startswith(("global.", "install.")):
            settings[key.split(".", 1)[1]] = value.strip().strip("'\"")
    for name, value in os.environ.items():
        if name.startswith("PIP_") and name not in ("PIP_CONFIG_FILE", "PIP_REQUIRE_VIRTUALENV"):
            settings[name[4:].lower().replace("_", "-")] = value
    return settings


def local_paths(settings: dict[str, str]) -> list[Path]:
    """Existing local files and folders the settings refer to (for a local index, the folder above its
    ``simple/``, since index pages link to ``../../files/...``)."""
    paths = []
    for key in PATH_KEYS:
        for item in settings.get(key, "").split():
            path = Path(unquote(urlparse(item).path)) if item.startswith("file:") else Path(item)
            if key.endswith("index-url") and path.name == "simple":
                path = path.parent
            if path.is_absolute() and path.exists() and path not in paths:
                paths.append(path)
    return paths


def cpu_torch(settings: dict[str, str], pytag: str) -> str:
    """Pinned requirements for the newest local CPU torch wheel for ``pytag`` (e.g. cp311), if any."""
    wheel = re.compile(rf"torch-(\d+)\.(\d+)\.(\d+)\+cpu-{pytag}-{pytag}-(many)?linux\w*x86_64\.whl$")
    found = []
    for folder in local_paths({"find-links": settings.get("find-links", "")}):
        for file in folder.glob("torch-*+cpu-*.whl") if folder.is_dir() else ():
            match = wheel.match(file.name)
            if match:
                found.append(tuple(int(part) for part in match.groups()[:3]))
    if not found:
        return ""
    major, minor, patch = max(found)
    # torchvision 0.(N+15) is built for torch 2.N (0.15 ↔ 2.0 since torch 2.0).
    return f"torch=={major}.{minor}.{patch}+cpu torchvision==0.{minor + 15}.*"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the Python whose pip setup to use")
    parser.add_argument("--write", type=Path, help="where to write the merged pip.conf (prints the mounts)")
    parser.add_argument("--cpu-torch", metavar="PYTAG", help="print CPU torch requirements for e.g. cp311")
    args = parser.parse_args()
    settings = pip_settings(args.python)
    if args.cpu_torch:
        print(cpu_torch(settings, args.cpu_torch))
        return
    if args.write is None:
        parser.error("give --write PATH or --cpu-torch PYTAG")
    config = configparser.ConfigParser(interpolation=None)
    config["global"] = settings
    with args.write.open("w") as stream:
        config.write(stream)
    print(f"{args.write}:/etc/pip.conf:ro")
    for path in local_paths(settings):
        print(f"{path}:{path}:ro")


if __name__ == "__main__":
    main()
