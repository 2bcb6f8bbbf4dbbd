"""The image's entry point (docker/entrypoint.sh), run by ``sh`` with a stand-in ``nst-bot`` on PATH: which
commands reach nst-bot, and the message for a config hidden by an empty bind mount. No container needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def entrypoint(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "nst-bot"
    stub.write_text('#!/bin/sh\necho "nst-bot called with: $*"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "NST_CONFIG": str(config),
           "NST_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(["sh", str(ROOT / "docker" / "entrypoint.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=30)


@pytest.mark.parametrize("command", ["run", "worker", "fetch-assets"])
def test_an_empty_config_mount_is_named_with_the_fix(tmp_path: Path, command: str) -> None:
    (tmp_path / "config").mkdir()
    result = entrypoint(tmp_path, tmp_path / "config" / "config.toml", command)
    assert result.returncode == 2 and "called with" not in result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert "is empty: a mounted folder (./config in docker-compose.yml) hides the image's config" in result.stderr
    assert "cp docker/config.toml config/config.toml" in result.stderr


def test_a_config_folder_without_the_file_names_the_containers_template(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "presets").mkdir()
    result = entrypoint(tmp_path, tmp_path / "config" / "config.toml")  # no command: run
    assert result.returncode == 2 and "no config file at" in result.stderr
    assert "cp docker/config.toml config/config.toml (the template for containers)" in result.stderr


@pytest.mark.parametrize("args, expected", [([], "run"), (["worker"], "worker"), (["--help"], "--help"),
                                            (["stylize", "a.png", "-o", "b.png"], "stylize a.png -o b.png")])
def test_nst_bot_commands_reach_nst_bot(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "config.toml").write_text("")
    result = entrypoint(tmp_path, tmp_path / "config.toml", *args)
    assert result.returncode == 0 and result.stdout.strip() == f"nst-bot called with: {expected}", result.stderr


def test_other_programs_run_as_given(tmp_path: Path) -> None:
    result = entrypoint(tmp_path, tmp_path / "missing.toml", "echo", "hello")
    assert result.returncode == 0 and result.stdout.strip() == "hello"
