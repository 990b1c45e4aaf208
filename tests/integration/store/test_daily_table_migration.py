"""Migration 0016: each stored 360 row splits into its documents and daily parts, and back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from concord.customer360.stored import DAILY, base_hash, row_of, whole_rows
from concord.store import Store
from concord.store.store import MIGRATIONS_DIR

BEFORE = "0015_i19_documents_by_customer"
AFTER = "0016_i19_daily_table"
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC).replace(tzinfo=None)


def _alembic(store: Store) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["concord_engine"] = store.engine
    return cfg


def _row(gid: str, tier: str, *, hashed: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "concord_id": gid,
        "name": {"value": f"Customer {gid}", "source": "erp:1"},
        "orders_count": 3,
        "lifetime_revenue": "120.00",
        "open_balance": "20.00",
        "as_of": "2026-12-01",
        "days_since_last_order": 4,
        "value_tier": tier,
        "lifecycle_stage": "active",
        "churn_risk": 0.1234,
        "p_alive": 0.8766,
        "churn": None,
        "erp_receivable": None,
        "erp_receivable_difference": None,
        "rfm_recency": 5,
        "rfm_frequency": 3,
        "rfm_monetary": 4,
        "updated_at": "2026-12-01T03:00:00Z",
        "content_hash": f"h-{gid}",
    }
    data["_hashed"] = hashed
    return data


def _stage_old(store: Store, rows: list[dict[str, Any]]) -> None:
    """360 rows as revision 0015 held them: one JSON document each, daily figures inside."""
    with store.begin() as conn:
        for data in rows:
            hashed = data.pop("_hashed")
            conn.execute(
                text(
                    "INSERT INTO customer360 (concord_id, name, data, content_hash, base_hash, "
                    "value_tier, updated_at, run_id) VALUES (:gid, :name, :data, :h, :bh, :tier, "
                    ":now, 'run-1')"
                ),
                {
                    "gid": data["concord_id"],
                    "name": data["name"]["value"],
                    "data": orjson.dumps(data).decode(),
                    "h": data["content_hash"],
                    "bh": "b-" + data["concord_id"] if hashed else None,
                    "tier": data["value_tier"],
                    "now": NOW,
                },
            )


def test_upgrade_splits_each_360_row_and_downgrade_joins_it_again(store_url: str) -> None:
    store = Store(store_url)
    cfg = _alembic(store)
    command.upgrade(cfg, BEFORE)
    rows = [_row("G1", "A", hashed=True), _row("G2", "C", hashed=False)]
    _stage_old(store, [dict(r) for r in rows])
    for r in rows:
        del r["_hashed"]

    command.upgrade(cfg, AFTER)
    with store.engine.connect() as conn:
        assert list(whole_rows(conn)) == rows  # the whole rows read as before
        wide = dict(conn.execute(text("SELECT concord_id, base_hash FROM customer360")).all())
        day = conn.execute(
            text("SELECT concord_id, content_hash, value_tier, data FROM customer360_daily")
        ).all()
        one = row_of(conn, "G2")
    assert one == rows[1]
    # the kept base hash; a row without one gets its documents figures' hash, as the build's
    assert wide == {"G1": "b-G1", "G2": base_hash(rows[1])}
    by_id = {gid: (h, tier, data) for gid, h, tier, data in day}
    assert {gid: (h, tier) for gid, (h, tier, _) in by_id.items()} == {
        "G1": ("h-G1", "A"),
        "G2": ("h-G2", "C"),
    }
    daily = by_id["G1"][2]
    daily = orjson.loads(daily) if isinstance(daily, str) else daily
    assert set(daily) == {*DAILY, "content_hash"}

    command.downgrade(cfg, BEFORE)
    with store.engine.connect() as conn:
        back = conn.execute(
            text("SELECT concord_id, data, content_hash, value_tier FROM customer360")
        ).all()
    got = {gid: (orjson.loads(d) if isinstance(d, str) else d, h, tier) for gid, d, h, tier in back}
    assert got == {r["concord_id"]: (r, r["content_hash"], r["value_tier"]) for r in rows}
    command.upgrade(cfg, "head")
    store.dispose()
