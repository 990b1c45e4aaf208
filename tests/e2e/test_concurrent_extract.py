"""Concurrent extract (``extract_concurrency``) over three sandbox ERPs, on SQLite and PostgreSQL:
pulling side by side ends in the same store as pulling one after the other; a failing source
leaves the others committed and the run partial; a sync killed mid-extract, then rerun, loses
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from concord.config import load_config
from concord.errors import RunPartial
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from sandbox.server import Request, Response
from tests.e2e.conftest import REPO

UNTIL = datetime(2026, 11, 2, tzinfo=UTC)
SEEDS = {"erp_a": 7, "erp_b": 8, "erp_c": 9}
ENTITIES = ("customers", "orders", "shipments", "invoices", "payments")
DEAD = "http://127.0.0.1:9"  # nothing listens there: connection refused


class SlowErp(RestErpServer):
    """The sandbox ERP, slowed down so a kill lands in the middle of the extract."""

    def handle(self, request: Request) -> Response:
        time.sleep(0.02)
        return super().handle(request)


def write_config(
    path: Path,
    *,
    store_url: str,
    urls: dict[str, str],
    concurrency: int,
    paths: dict[tuple[str, str], str] | None = None,
) -> Path:
    """Three REST sources (one per sandbox ERP), no target; ``paths`` overrides entity paths."""
    m = REPO / "mappings" / "sandbox_erp"
    lines = [
        f"store_url: {store_url}",
        "base_currency: EUR",
        'fx_rates: {USD: "0.92", GBP: "1.17"}',
        "reject_ratio: 0.5",
        f"extract_concurrency: {concurrency}",
        "sources:",
    ]
    for name, url in urls.items():
        lines += [
            f"  {name}:",
            "    type: rest",
            f"    base_url: {url}",
            "    auth: {type: bearer, token: {env: SANDBOX_ERP_TOKEN}}",
            "    paginator: {type: cursor, cursor_path: next_cursor, cursor_param: cursor}",
            "    page_size: 15",
            "    incremental: {start_param: updated_since, end_param: updated_before}",
            "    http: {backoff_base: 0.01, max_attempts: 2}",
            "    entities:",
        ]
        for e in ENTITIES:
            where = (paths or {}).get((name, e), f"/api/v1/{e}")
            lines.append(f"      {e}: {{path: {where}, mapping: {m / (e + '.yaml')}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def datasets() -> dict[str, ErpDataset]:
    return {name: ErpDataset.generate(seed=seed, customers=25) for name, seed in SEEDS.items()}


@pytest.fixture
def erps(datasets: dict[str, ErpDataset]) -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(RestErpServer(data)).url for name, data in datasets.items()
        }


def rows(store: Store, table: Any, *cols: str) -> set[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(*[table.c[c] for c in cols])).all())


def snapshot(url: str) -> dict[str, Any]:
    """What the extract and map leave: staged records, watermarks, canonical rows, rejects."""
    store = Store(url)
    try:
        return {
            "raw": rows(store, t.raw_records, "source", "entity", "source_id", "hash", "cursor"),
            "watermarks": rows(store, t.watermarks, "source", "entity", "cursor", "checkpoint"),
            "canonical": {
                name: rows(store, table, "source", "source_id", "hash")
                for name, table in t.CANONICAL_TABLES.items()
            },
            "rejects": rows(store, t.rejects, "stage", "source", "entity", "source_id", "reason"),
        }
    finally:
        store.dispose()


def pulled(report: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """(records, pages, new) per source entity of a run report."""
    return {
        scope: (body["records"], body["pages"], body["new"])
        for scope, body in report["stages"]["extract"].items()
    }


def sync(cfg: Path) -> dict[str, Any]:
    report: dict[str, Any] = dict(run_sync(load_config(cfg), RunOptions(window_end=UNTIL)))
    return report


def test_concurrency_one_and_n_give_the_same_store(
    tmp_path: Path, store_url: str, erps: dict[str, str], datasets: dict[str, ErpDataset]
) -> None:
    reference = f"sqlite:///{tmp_path / 'sequential.db'}"
    one = sync(write_config(tmp_path / "one.yaml", store_url=reference, urls=erps, concurrency=1))
    many = sync(write_config(tmp_path / "n.yaml", store_url=store_url, urls=erps, concurrency=4))
    assert pulled(many) == pulled(one)
    for name, data in datasets.items():
        assert many["stages"]["extract"][f"{name}/orders"]["records"] == data.count("orders")
    expected, got = snapshot(reference), snapshot(store_url)
    assert got["raw"] and got["watermarks"]
    for key in expected:
        assert got[key] == expected[key], f"{key} differs between concurrency 1 and 4"


def test_a_failing_source_leaves_the_others_committed_and_the_run_partial(
    tmp_path: Path, store_url: str, erps: dict[str, str], datasets: dict[str, ErpDataset]
) -> None:
    urls = {**erps, "erp_b": DEAD}
    cfg = write_config(
        tmp_path / "c.yaml",
        store_url=store_url,
        urls=urls,
        concurrency=4,
        paths={("erp_c", "shipments"): "/api/v1/no_such_entity"},
    )
    with pytest.raises(RunPartial):
        sync(cfg)
    store = Store(store_url)
    try:
        last = store.last_runs(1)[0]
        assert last["status"] == "partial"
        extract = last["report"]["stages"]["extract"]
        assert "connection failed" in extract["erp_b/customers"]["error"]
        for e in ENTITIES[1:]:  # down after its first entity: the others not asked
            assert "not pulled" in extract[f"erp_b/{e}"]["error"]
            assert store.watermark("erp_b", e).cursor is None
        assert "error" in extract["erp_c/shipments"]
        assert store.watermark("erp_c", "shipments").cursor is None
        raw = t.raw_records
        with store.engine.connect() as conn:
            counted = conn.execute(
                select(raw.c.source, raw.c.entity, func.count()).group_by(
                    raw.c.source, raw.c.entity
                )
            ).all()
        staged = {(s, e): n for s, e, n in counted}
        for e in ENTITIES:  # a fatal error in one entity: the source's other entities go on
            assert staged[("erp_a", e)] == datasets["erp_a"].count(e)
            if e != "shipments":
                assert staged[("erp_c", e)] == datasets["erp_c"].count(e)
                assert store.watermark("erp_c", e).cursor is not None
        assert not any(s == "erp_b" for s, _ in staged)
        assert ("erp_c", "shipments") not in staged
    finally:
        store.dispose()


def run_cli(cfg: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "concord.cli",
            "sync",
            "-c",
            str(cfg),
            "--until",
            "2026-11-02T00:00:00Z",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_sync_killed_mid_extract_then_rerun_loses_nothing(
    tmp_path: Path, store_url: str, datasets: dict[str, ErpDataset]
) -> None:
    with ExitStack() as stack:
        urls = {name: stack.enter_context(SlowErp(data)).url for name, data in datasets.items()}
        reference = f"sqlite:///{tmp_path / 'clean.db'}"
        clean = write_config(tmp_path / "clean.yaml", store_url=reference, urls=urls, concurrency=1)
        sync(clean)
        total = sum(data.count(e) for data in datasets.values() for e in ENTITIES)
        cfg = write_config(tmp_path / "c.yaml", store_url=store_url, urls=urls, concurrency=4)
        proc = run_cli(cfg)
        store = Store(store_url)
        killed = False
        deadline = time.monotonic() + 120
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with store.engine.connect() as conn:
                        n = conn.execute(select(func.count()).select_from(t.raw_records)).scalar()
                except Exception:  # the tables may not exist yet
                    n = 0
                if n and n >= total // 3:
                    proc.kill()
                    killed = True
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            store.dispose()
        assert killed, "the sync finished (or hung) before it could be killed mid-extract"
        rerun = run_cli(cfg)
        out, _ = rerun.communicate(timeout=180)
        assert rerun.returncode == 0, out.decode()[-3000:]
    expected, got = snapshot(reference), snapshot(store_url)
    for key in expected:
        assert got[key] == expected[key], f"{key} differs after kill + rerun"
