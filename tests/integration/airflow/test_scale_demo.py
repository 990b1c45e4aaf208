"""`make scale-demo` works: the DAG imports from the copied config, the Celery run on two
workers and the embedded run end with equal stores and CRMs, and the report says so."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DEMO_SECONDS = 1200


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run_demo(argv: list[str]) -> tuple[int, str, str]:
    """Run the demo; on a timeout or an interrupt, SIGTERM it so it stops what it started."""
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=DEMO_SECONDS)
    except BaseException:
        proc.terminate()
        try:
            proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    return proc.returncode, out, err


# The demo starts a whole Airflow cluster; on a loaded machine it needs more than the default 300 s.
@pytest.mark.timeout(DEMO_SECONDS + 120)
def test_the_scale_out_demo_runs_and_both_runs_agree(tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.celery")
    missing = [
        name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _listening(port)
    ]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the scale-out demo needs {' and '.join(missing)} on 127.0.0.1")
        pytest.skip(f"{' and '.join(missing)} not running on 127.0.0.1")
    report = tmp_path / "scale_out.md"
    returncode, out, err = _run_demo(
        [
            sys.executable,
            str(REPO / "scripts" / "scale_demo.py"),
            "--customers",
            "120",
            "--report",
            str(report),
            "--name-suffix",
            f"_t{uuid.uuid4().hex[:6]}",
            "--redis-db",
            str(random.randint(8, 15)),  # apart from a concurrent demo's Celery broker
        ],
    )
    assert returncode == 0, out[-4000:] + err[-4000:]
    text = report.read_text()
    assert "**success**" in text
    assert "CRM state equal: **yes**" in text and "Store state equal: **yes**" in text
    assert "worker-1" in text and "worker-2" in text
