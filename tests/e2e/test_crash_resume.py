"""Killing the sync mid-run (kill -9) and rerunning ends in the same store and CRM state as an
uninterrupted run: pages commit with their checkpoint, stages are idempotent, pushes are upserts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from concord.customer360.stored import whole_rows
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from sandbox.server import Request, Response
from tests.e2e.conftest import REPO, write_config

UNTIL = "2026-11-02T00:00:00Z"


class SlowErp(RestErpServer):
    """The sandbox ERP, slowed down so a kill lands in the middle of the extract."""

    def handle(self, request: Request) -> Response:
        time.sleep(0.03)
        return super().handle(request)


class SlowCrm(CrmServer):
    def handle(self, request: Request) -> Response:
        time.sleep(0.15)
        return super().handle(request)


def run_cli(cfg: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "concord.cli", "sync", "-c", str(cfg), "--until", UNTIL],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def kill_when(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60
) -> bool:
    """kill -9 the sync once ``ready()`` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            reached = ready()
        except Exception:  # the store or its tables may not exist yet
            reached = False
        if reached:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("sync neither reached the kill point nor finished")


def rows(store: Store, table: Any, *cols: str) -> set[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(*[table.c[c] for c in cols])).all())


def snapshot(store: Store, crm: CrmServer) -> dict[str, Any]:
    with store.engine.connect() as conn:
        c360 = {
            data["concord_id"]: {k: v for k, v in data.items() if k != "updated_at"}
            for data in whole_rows(conn)
        }
        open_rejects = conn.execute(
            select(func.count()).select_from(t.rejects).where(t.rejects.c.resolved_run.is_(None))
        ).scalar_one()
    return {
        "canonical": {
            name: rows(store, table, "source", "source_id", "hash")
            for name, table in t.CANONICAL_TABLES.items()
        },
        "links": rows(store, t.identity_links, "source", "source_id", "concord_id"),
        "golden": rows(store, t.golden, "concord_id", "status"),
        "c360": c360,
        "push": rows(store, t.push_state, "concord_id", "status", "accepted_hash"),
        "pending": {r for r in rows(store, t.raw_state, "source_id", "pending") if r[1]},
        "open_rejects": open_rejects,
        "crm": {k: v["properties"] for k, v in crm.objects["companies"].items()},
    }


@pytest.fixture
def clean_state(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The state an uninterrupted run reaches on the same data."""
    data = ErpDataset.generate(seed=7, customers=40)
    with RestErpServer(data) as erp, CrmServer() as crm:
        url = f"sqlite:///{tmp_path / 'clean.db'}"
        cfg = write_config(
            tmp_path / "clean.yaml",
            store_url=url,
            erp_url=erp.url,
            crm_url=crm.url,
            page_size=20,
            batch_size=10,
        )
        proc = run_cli(cfg)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()
        yield snapshot(Store(url), crm)


@pytest.mark.parametrize("stage", ["extract", "push"])
def test_killed_sync_resumes_to_the_same_state(
    tmp_path: Path, stage: str, clean_state: dict[str, Any]
) -> None:
    data = ErpDataset.generate(seed=7, customers=40)
    with SlowErp(data) as erp, SlowCrm() as crm:
        url = f"sqlite:///{tmp_path / 'crashed.db'}"
        cfg = write_config(
            tmp_path / "crashed.yaml",
            store_url=url,
            erp_url=erp.url,
            crm_url=crm.url,
            page_size=20,
            batch_size=10,
        )
        store = Store(url)
        if stage == "extract":

            def ready() -> bool:
                with store.engine.connect() as conn:
                    n = conn.execute(select(func.count()).select_from(t.raw_records)).scalar()
                return bool(n and n >= 150)
        else:

            def ready() -> bool:
                with store.engine.connect() as conn:
                    n = conn.execute(select(func.count()).select_from(t.push_state)).scalar()
                return bool(n and n >= 10)

        assert kill_when(run_cli(cfg), ready), "the sync finished before it could be killed"
        if stage == "push":
            assert 0 < len(crm.objects["companies"]) < len(clean_state["crm"])
        rerun = run_cli(cfg)
        out, _ = rerun.communicate(timeout=120)
        if rerun.returncode != 0 and b"lock" in out:
            pytest.fail("a killed run's lock blocked the rerun: " + out.decode())
        assert rerun.returncode == 0, out.decode()
        after = snapshot(store, crm)
    for key in clean_state:
        assert after[key] == clean_state[key], f"{key} differs after kill + rerun"
