"""Sharded extract against the sandbox ERP on loopback (no Airflow needed): shards stage the same
records as one whole pull, keep their own checkpoints, and the entity watermark advances only
when every shard of the run committed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from concord.config import load_config
from concord.errors import StoreError
from concord.pipeline.context import RunContext, RunOptions, open_context
from concord.pipeline.shards import commit_shards, extract_shard, shard_windows
from concord.store import tables as t
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from tests.repo_config import repo_config_data

REPO = Path(__file__).resolve().parents[3]
END = datetime(2026, 11, 2, tzinfo=UTC)
SINCE = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def erp(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RestErpServer, ErpDataset]]:
    dataset = ErpDataset.generate(seed=3, customers=30)
    with RestErpServer(dataset, token="sandbox-erp-token") as server:
        monkeypatch.setenv("CONCORD_SANDBOX_ERP_URL", server.url)
        monkeypatch.setenv("SANDBOX_ERP_TOKEN", "sandbox-erp-token")
        yield server, dataset


def _ctx(tmp_path: Path, store_url: str, run_id: str) -> RunContext:
    data = repo_config_data()
    data["store_url"] = store_url
    data["targets"] = {}
    data["sources"] = {"sandbox_erp": data["sources"]["sandbox_erp"]}
    data["sources"]["sandbox_erp"]["entities"]["orders"]["shards"] = {"count": 3}
    path = tmp_path / "concord.yaml"
    path.write_text(yaml.safe_dump(data))
    return open_context(load_config(path), RunOptions(run_id=run_id, window_end=END))


def _staged(ctx: RunContext) -> int:
    from sqlalchemy import func, select

    raw = t.raw_records
    with ctx.store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(raw).where(raw.c.entity == "orders")
            ).scalar_one()
        )


def test_shards_stage_every_record_and_advance_the_watermark_once_all_committed(
    erp: tuple[RestErpServer, ErpDataset], store_url: str, tmp_path: Path
) -> None:
    _, dataset = erp
    ctx = _ctx(tmp_path, store_url, "run_a")
    shards = shard_windows(None, END, 3, SINCE)
    reports = [extract_shard(ctx, "sandbox_erp", "orders", s) for s in shards[:2]]
    with pytest.raises(StoreError, match="shards 2/3 of run run_a are not committed"):
        commit_shards(ctx, "sandbox_erp", "orders", 3)
    assert ctx.store.watermark("sandbox_erp", "orders").cursor is None

    reports.append(extract_shard(ctx, "sandbox_erp", "orders", shards[2]))
    assert sum(r.records for r in reports) == dataset.count("orders") == _staged(ctx)
    assert all(r.records > 0 for r in reports)
    total = commit_shards(ctx, "sandbox_erp", "orders", 3)
    assert total.records == dataset.count("orders")
    assert total.watermark == max(r["updated_at"] for r in dataset.iter_all("orders"))
    assert ctx.store.watermark("sandbox_erp", "orders").cursor == total.watermark

    again = extract_shard(ctx, "sandbox_erp", "orders", shards[1])
    assert again.skipped == "already done in this run"
    ctx.store.dispose()


def test_a_new_run_does_not_count_shards_committed_by_an_earlier_run(
    erp: tuple[RestErpServer, ErpDataset], sqlite_url: str, tmp_path: Path
) -> None:
    first = _ctx(tmp_path, sqlite_url, "run_a")
    for shard in shard_windows(None, END, 3, SINCE):
        extract_shard(first, "sandbox_erp", "orders", shard)
    second = _ctx(tmp_path, sqlite_url, "run_b")
    extract_shard(second, "sandbox_erp", "orders", shard_windows(None, END, 3, SINCE)[0])
    with pytest.raises(StoreError, match="1/3, 2/3 of run run_b"):
        commit_shards(second, "sandbox_erp", "orders", 3)
