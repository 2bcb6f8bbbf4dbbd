"""OpenMP's idle threads spin briefly, then sleep, in every process that runs the engine, unless the operator chose
otherwise (nst_engine/__init__.py: long spinning stalled each small op on a shared CPU, sleeping at once slowed
the coarse scales on an idle one; benchmarks/README.md, "Round eight")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = ("import json, os, nst_engine, torch; assert torch.get_num_threads() > 0; "
         "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT')]))")


def _openmp_settings_seen(**env: str) -> list:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=REPO,
                            env={**environment, **env})
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_engine_makes_idle_openmp_threads_spin_briefly_then_sleep():
    from nst_engine import SPIN_ROUNDS

    assert _openmp_settings_seen() == [None, str(SPIN_ROUNDS)]
    assert 0 < SPIN_ROUNDS < 300_000  # below libgomp's own default, which stalled a busy CPU


def test_an_operators_own_wait_policy_is_kept_without_a_spin_count():
    assert _openmp_settings_seen(OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", None]
    assert _openmp_settings_seen(OMP_WAIT_POLICY="PASSIVE") == ["PASSIVE", None]


def test_an_operators_own_spin_count_is_kept():
    assert _openmp_settings_seen(GOMP_SPINCOUNT="50000") == [None, "50000"]
