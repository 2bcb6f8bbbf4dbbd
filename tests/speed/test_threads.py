"""OpenMP's idle threads sleep in every process that runs the engine, unless the operator chose otherwise
(nst_engine/__init__.py; spinning threads stalled each small op on a shared CPU, benchmarks/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = "import os, nst_engine, torch; print(os.environ.get('OMP_WAIT_POLICY'), torch.get_num_threads() > 0)"


def _policy_seen(**env: str) -> str:
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=REPO,
                            env={**environment, **env})
    return result.stdout.split()[0]


def test_importing_the_engine_makes_idle_openmp_threads_sleep():
    assert _policy_seen() == "PASSIVE"


def test_an_operators_own_wait_policy_is_kept():
    assert _policy_seen(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
