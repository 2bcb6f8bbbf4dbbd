"""The README's set-up and test commands as a newcomer meets them: the CPU-only set-up script, and skipped
tests that say why in the summary.

The script needs PyPI and PyPI's CPU index (not reachable here), so ``python3`` and ``pip`` are stand-ins
that record what they were asked to do; what the script asks, in which order and where, is real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

STANDIN_PYTHON = """#!/bin/sh
# python3 stand-in: `-m venv DIR` makes DIR/bin/pip, which logs its arguments and working folder.
[ "$1 $2" = "-m venv" ] || exit 9
mkdir -p "$3/bin"
printf '#!/bin/sh\\necho "pip $* (in $(pwd))" >> "%s"\\n' "$PIP_LOG" > "$3/bin/pip"
chmod +x "$3/bin/pip"
"""


def run_setup(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup-cpu.sh", clone / "scripts")
    standin = tmp_path / "bin" / "python3"
    standin.parent.mkdir()
    standin.write_text(STANDIN_PYTHON)
    standin.chmod(0o755)
    log = tmp_path / "pip.log"
    environment = {"PATH": f"{standin.parent}:/usr/bin:/bin", "PIP_LOG": str(log), **env}
    result = subprocess.run(["bash", str(clone / "scripts" / "setup-cpu.sh")], capture_output=True, text=True,
                            env=environment, cwd=tmp_path, timeout=60)
    return result, log.read_text().splitlines() if log.exists() else []


def test_the_cpu_setup_installs_torchs_cpu_build_before_nst_bot(tmp_path: Path) -> None:
    result, pip = run_setup(tmp_path)
    assert result.returncode == 0, result.stderr
    clone = tmp_path / "clone"
    assert pip == [f"pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision (in {clone})",
                   f"pip install -e .[dev] (in {clone})"]
    assert (clone / ".venv" / "bin" / "pip").exists()
    assert ".venv/bin/nst-bot --help" in result.stdout


def test_the_cpu_setup_takes_a_mirror_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    result, pip = run_setup(tmp_path, TORCH_INDEX_URL="https://mirror.example/whl/cpu")
    assert pip[0].startswith("pip install --index-url https://mirror.example/whl/cpu torch torchvision")
    failing, pip = run_setup(tmp_path / "again", PYTHON="false")
    assert failing.returncode != 0 and pip == []


def test_skipped_tests_say_why_in_the_summary(tmp_path: Path) -> None:
    test = tmp_path / "test_skipping.py"
    test.write_text('import pytest\n\ndef test_needs_redis():\n    pytest.skip("redis-server is not installed")\n')
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                             str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(test)],
                            capture_output=True, text=True, timeout=120, env={**os.environ}, cwd=tmp_path)
    assert "1 skipped" in result.stdout, result.stdout
    assert "SKIPPED [1]" in result.stdout and "redis-server is not installed" in result.stdout, result.stdout
