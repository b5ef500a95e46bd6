"""`molecule test` on the lab scenario (molecule/default): create, converge, idempotence, verify
with testinfra, destroy. Last of the lab tests (its destroy takes the lab down)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from .conftest import REPO

pytestmark = pytest.mark.lab


@pytest.mark.timeout(1500)
def test_molecule_runs_the_lab_scenario_through_its_lifecycle(lab):
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    p = subprocess.run(["molecule", "test"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1400,
                       stdin=subprocess.DEVNULL)
    output = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout + p.stderr)
    print(output[-4000:])
    assert p.returncode == 0, output[-8000:]
    # molecule's own report: every step of the lifecycle ran and succeeded, the second deploy
    # (idempotence) changing nothing.
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"default ➜ {step}: Executed: Successful" in output, step
    assert "successful=5" in output and "failed=0" in output
