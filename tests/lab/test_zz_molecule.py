"""`molecule test` on the lab scenario (molecule/default): create, converge, idempotence, verify
with testinfra, destroy. Last of the lab tests (its destroy takes the lab down)."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import REPO

pytestmark = pytest.mark.lab


@pytest.mark.timeout(1500)
def test_molecule_runs_the_lab_scenario_through_its_lifecycle(lab):
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    p = subprocess.run(["molecule", "test"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1400,
                       stdin=subprocess.DEVNULL)
    output = p.stdout + p.stderr
    print(output[-4000:])
    assert p.returncode == 0, output[-8000:]
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"{step}" in output
    assert "Idempotence completed successfully" in output or "idempotence" in output
