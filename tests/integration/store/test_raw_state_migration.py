"""Migration 0013: raw records' map state moves to ``raw_state`` and back, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from concord.store import Store
from concord.store.store import MIGRATIONS_DIR

BEFORE = "0013_i19_daily_360"
AFTER = "0014_i19_raw_state"

# (source_id, hash, pending, mapped_fp)
RECORDS = [
    ("1", "h1", False, "fp-old"),
    ("2", "h2", True, None),
    ("3", "h3", False, None),
    ("4", "h4", True, "fp-new"),
]


def _alembic(store: Store) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["concord_engine"] = store.engine
    return cfg


def _stage_old(store: Store) -> None:
    """Raw records as revision 0012 held them: their map state in their own row."""
    now = datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None)
    with store.begin() as conn:
        for sid, digest, pending, fp in RECORDS:
            conn.execute(
                text(
                    "INSERT INTO raw_records (source, entity, source_id, payload, hash, cursor, "
                    "pending, mapped_fp, deleted_at, run_id, extracted_at) VALUES "
                    "('erp', 'orders', :sid, :payload, :hash, NULL, :pending, :fp, NULL, "
                    ":run, :now)"
                ),
                {
                    "sid": sid,
                    "payload": b'{"id": "%s"}' % sid.encode(),
                    "hash": digest,
                    "pending": pending,
                    "fp": fp,
                    "run": f"run-{sid}",
                    "now": now,
                },
            )


def test_upgrade_moves_map_state_to_raw_state_and_downgrade_moves_it_back(
    store_url: str,
) -> None:
    store = Store(store_url)
    cfg = _alembic(store)
    command.upgrade(cfg, BEFORE)
    _stage_old(store)

    command.upgrade(cfg, AFTER)
    with store.engine.connect() as conn:
        moved = conn.execute(
            text(
                "SELECT source_id, hash, pending, mapped_fp, run_id FROM raw_state "
                "WHERE source = 'erp' AND entity = 'orders' ORDER BY source_id"
            )
        ).all()
    assert [(s, h, bool(p), fp, run) for s, h, p, fp, run in moved] == [
        (sid, digest, pending, fp, f"run-{sid}") for sid, digest, pending, fp in RECORDS
    ]
    pending = [sid for batch in store.pending_batches("erp", "orders", 10) for sid, _p, _h in batch]
    assert pending == ["2", "4"]

    command.downgrade(cfg, BEFORE)
    with store.engine.connect() as conn:
        back = conn.execute(
            text(
                "SELECT source_id, hash, pending, mapped_fp FROM raw_records "
                "WHERE source = 'erp' AND entity = 'orders' ORDER BY source_id"
            )
        ).all()
    assert [(s, h, bool(p), fp) for s, h, p, fp in back] == RECORDS

    command.upgrade(cfg, "head")
    assert store.mark_for_replay("erp", "orders", unless_fp="fp-new") == 2  # "1" and "3"
    store.dispose()
