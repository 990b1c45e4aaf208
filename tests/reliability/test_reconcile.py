"""Reconciliation in the run report: a clean sync reconciles (counts and money per currency agree
between the pull, the canonical store and the CRM push); a changed amount, a lost canonical row or
a customer never pushed is flagged as a mismatch naming the source and entity."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from concord.config import load_config
from concord.pipeline import RunOptions, open_context
from concord.pipeline.reconcile import canonical_count_and_money, reconcile
from concord.store import tables as t
from concord.store.counts import canonical_count
from tests.reliability.conftest import Sandbox, sync, write_config


@pytest.fixture
def synced(tmp_path: Path, store_url: str, sandbox: Sandbox) -> tuple[Path, dict[str, Any]]:
    config = write_config(
        tmp_path / "c.yaml", store_url=store_url, erp_url=sandbox.erp.url, crm_url=sandbox.crm.url
    )
    return config, sync(config)


def _again(config: Path, run_id: str) -> dict[str, Any]:
    ctx = open_context(load_config(config), RunOptions(run_id=run_id))
    try:
        return reconcile(ctx).as_dict()
    finally:
        ctx.store.dispose()


def test_clean_sync_reconciles_counts_and_money(
    synced: tuple[Path, dict[str, Any]], sandbox: Sandbox
) -> None:
    _config, report = synced
    body = report["stages"]["reconcile"]["all"]
    assert body["mismatches"] == [] and body["ok"] is True
    orders = next(e for e in body["entities"] if e["entity"] == "orders")
    run = orders["this_run"]
    assert run["pulled"] == sandbox.dataset.count("orders")
    assert run["pulled"] == run["canonical"] + run["rejected"] + run["pending"]
    assert run["rejected"] == 2  # the bad date and the bad amount of the sandbox's messy cases
    assert run["pull_money"] == run["canonical_money"]
    assert sum(Decimal(v) for v in run["canonical_money"].values()) > 0
    (target,) = body["targets"]
    assert target["not_pushed"] == 0 and target["accepted"] == target["customers"]


def test_changed_canonical_amount_is_flagged(synced: tuple[Path, dict[str, Any]]) -> None:
    config, report = synced
    ctx = open_context(load_config(config), RunOptions(run_id=report["run_id"]))
    with ctx.store.begin() as conn:
        row = conn.execute(select(t.orders.c.source_id, t.orders.c.currency)).first()
        assert row is not None
        sid, currency = row
        conn.execute(
            update(t.orders).where(t.orders.c.source_id == sid).values(gross_total=Decimal("0.01"))
        )
    ctx.store.dispose()
    body = _again(config, report["run_id"])
    assert body["ok"] is False
    assert any(m.startswith("sandbox_erp/orders:") and currency in m for m in body["mismatches"])


def test_lost_canonical_row_is_flagged(synced: tuple[Path, dict[str, Any]]) -> None:
    config, report = synced
    ctx = open_context(load_config(config), RunOptions(run_id=report["run_id"]))
    with ctx.store.begin() as conn:
        sid = conn.execute(select(t.shipments.c.source_id)).scalars().first()
        conn.execute(delete(t.shipments).where(t.shipments.c.source_id == sid))
    ctx.store.dispose()
    body = _again(config, report["run_id"])
    found = [m for m in body["mismatches"] if m.startswith("sandbox_erp/shipments")]
    assert any(sid in m for m in found)
    assert any("staged" in m for m in found)


def test_customer_never_pushed_is_flagged(synced: tuple[Path, dict[str, Any]]) -> None:
    config, report = synced
    ctx = open_context(load_config(config), RunOptions(run_id=report["run_id"]))
    with ctx.store.begin() as conn:
        cid = conn.execute(select(t.push_state.c.concord_id)).scalars().first()
        conn.execute(delete(t.push_state).where(t.push_state.c.concord_id == cid))
    ctx.store.dispose()
    body = _again(config, report["run_id"])
    assert any("sandbox_crm" in m and "neither pushed" in m for m in body["mismatches"])


def test_money_above_the_sample_size_is_checked_on_a_sample(
    synced: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import concord.pipeline.reconcile

    config, report = synced
    monkeypatch.setattr(concord.pipeline.reconcile, "MONEY_SAMPLE", 20)
    body = _again(config, report["run_id"])
    assert body["mismatches"] == []
    orders = next(e for e in body["entities"] if e["entity"] == "orders")["this_run"]
    assert orders["money_sampled"] is True
    assert 0 < orders["money_checked"] < orders["canonical"]


def test_one_pass_counts_and_money_equal_a_count_and_a_sum_with_tombstones_and_pending(
    synced: tuple[Path, dict[str, Any]],
) -> None:
    config, report = synced
    ctx = open_context(load_config(config), RunOptions(run_id=report["run_id"]))
    o, st = t.orders, t.raw_state
    try:
        with ctx.store.begin() as conn:
            first, second = conn.execute(
                select(o.c.source, o.c.source_id).order_by(o.c.source_id).limit(2)
            ).all()
            # one order deleted in the ERP (its money leaves), one waiting for the map again
            conn.execute(update(o).where(o.c.source_id == first.source_id).values(state="deleted"))
            conn.execute(
                update(st)
                .where(st.c.source == second.source, st.c.source_id == second.source_id)
                .values(pending=True)
            )
        with ctx.store.engine.connect() as conn:
            canonical, money = canonical_count_and_money(conn, o, first.source, "orders")
            mapped = canonical_count(conn, first.source, "orders", o)
            sums = conn.execute(
                select(o.c.currency, func.sum(o.c.gross_total))
                .where(o.c.source == first.source, o.c.state.is_(None))
                .group_by(o.c.currency)
            ).all()
    finally:
        ctx.store.dispose()
    assert canonical == mapped == report_canonical(report, "orders") - 1  # the pending one
    assert money == {str(cur): str(total) for cur, total in sums}
    assert money and all(Decimal(v) > 0 for v in money.values())


def report_canonical(report: dict[str, Any], entity: str) -> int:
    body = report["stages"]["reconcile"]["all"]
    return int(next(e for e in body["entities"] if e["entity"] == entity)["canonical"])
