"""The store on SQLite and PostgreSQL: migrations, staging diff, exact money, UTC, locks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select, update

from concord.errors import LockBusy, StoreError
from concord.store import STAGING_CACHE_KIB, StagedRow, Store
from concord.store import tables as t
from concord.store.types import money_or_zero


def _row(sid: str, body: str) -> StagedRow:
    payload = body.encode()
    return StagedRow(sid, payload, f"h-{body}", "2026-01-01T00:00:00Z")


def _flush_table_counters(conn: Connection) -> None:
    """PostgreSQL 15+: the session's table counters reach ``pg_stat`` now, not at its next report.

    Else a refresh on another connection may read them before they arrive and count them after
    its ANALYZE.
    """
    version = conn.dialect.server_version_info or ()
    if conn.dialect.name == "postgresql" and tuple(version) >= (15,):
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")


def count_pending(store: Store, source: str, entity: str) -> int:
    """Raw records of one source entity still waiting for the map stage (their ``raw_state``)."""
    raw = t.raw_state
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(raw)
                .where(raw.c.source == source, raw.c.entity == entity, raw.c.pending.is_(True))
            ).scalar_one()
        )


def test_migrations_create_every_table_and_rerun_cleanly(store_url: str) -> None:
    store = Store.open(store_url)
    store.migrate()
    from sqlalchemy import inspect

    names = set(inspect(store.engine).get_table_names())
    assert set(t.metadata.tables) <= names
    assert "alembic_version" in names


def test_stage_writes_only_new_or_changed_payloads(store_url: str) -> None:
    store = Store.open(store_url)
    with store.begin() as conn:
        first = store.stage(conn, "erp", "orders", [_row("1", "a"), _row("2", "b")], "r1")
    with store.begin() as conn:
        second = store.stage(
            conn, "erp", "orders", [_row("1", "a"), _row("2", "B"), _row("3", "c")], "r2"
        )
    assert (first.new, first.changed, first.unchanged) == (2, 0, 0)
    assert (second.new, second.changed, second.unchanged) == (1, 1, 1)
    assert count_pending(store, "erp", "orders") == 3


def test_stage_leaves_an_unchanged_record_as_stored_and_takes_a_tombstone_back_as_changed(
    store_url: str,
) -> None:
    store = Store.open(store_url)
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", [_row("1", "a"), _row("2", "b")], "r1")
        store.mark_mapped(conn, "erp", "orders", [("1", "h-a"), ("2", "h-b")])
        assert store.tombstone(conn, "erp", "orders", {"1"}, None, "", "r1") == 1
    with store.begin() as conn:  # within a page the last record of an id wins
        again = store.stage(
            conn, "erp", "orders", [_row("1", "x"), _row("1", "a"), _row("2", "b")], "r2"
        )
    assert (again.new, again.changed, again.unchanged) == (0, 1, 1)
    raw, state = t.raw_records, t.raw_state
    same = (state.c.source == raw.c.source) & (state.c.entity == raw.c.entity)
    with store.engine.connect() as conn:
        stored = {
            str(sid): (bytes(payload), run, bool(pending), deleted)
            for sid, payload, run, pending, deleted in conn.execute(
                select(
                    raw.c.source_id,
                    raw.c.payload,
                    raw.c.run_id,
                    state.c.pending,
                    raw.c.deleted_at,
                ).select_from(raw.join(state, same & (state.c.source_id == raw.c.source_id)))
            )
        }
    assert stored == {"1": (b"a", "r1", False, None), "2": (b"b", "r2", True, None)}


def test_raw_records_statistics_are_refreshed_when_missing(
    store_url: str,
) -> None:
    store = Store.open(store_url)
    postgres = store.dialect == "postgresql"
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", [_row(str(i), f"b{i}") for i in range(200)], "r1")
        _flush_table_counters(conn)
    expected = ["raw_records"] if postgres else []
    assert store.refresh_statistics([t.raw_records]) == expected  # never analyzed: stale
    assert store.refresh_statistics([t.raw_records]) == []  # analyzed, not grown since
    if postgres:
        with store.engine.connect() as conn:
            planned = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = CAST('raw_records' AS regclass)"
            ).scalar_one()
        assert planned == 200


def test_statistics_are_refreshed_after_most_rows_changed(store_url: str) -> None:
    store = Store.open(store_url)
    rows = [_row(str(i), f"b{i}") for i in range(200)]
    postgres = store.dialect == "postgresql"
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", rows, "r1")
        _flush_table_counters(conn)
    store.refresh_statistics([t.raw_state])  # analyzed while every record is pending
    with store.begin() as conn:  # mapped in place: no row added
        st = t.raw_state
        conn.execute(
            update(st)
            .where(st.c.source_id.in_([r.source_id for r in rows[:150]]))
            .values(pending=False)
        )
        _flush_table_counters(conn)
    # not grown, but three quarters changed: the planner's idea of "pending" is wrong now
    assert store.refresh_statistics([t.raw_state]) == (["raw_state"] if postgres else [])
    assert store.refresh_statistics([t.raw_state]) == []
    if postgres:
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN SELECT 1 FROM raw_state WHERE source = 'erp' AND entity = 'orders' "
                "AND NOT pending"
            ).scalars()
            estimate = next(iter(plan))
        assert " rows=150 " in estimate  # was 1 with the statistics of the staging


def test_mark_mapped_keeps_records_that_changed_meanwhile_pending(store_url: str) -> None:
    store = Store.open(store_url)
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", [_row("1", "a"), _row("2", "b")], "r1")
    batches = list(store.pending_batches("erp", "orders", batch_size=1))
    assert [b[0][0] for b in batches] == ["1", "2"]
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", [_row("2", "b2")], "r2")
        store.mark_mapped(conn, "erp", "orders", [("1", "h-a"), ("2", "h-b")])
    assert count_pending(store, "erp", "orders") == 1


def test_a_night_finds_its_few_pending_records_through_the_partial_index(
    sqlite_url: str,
) -> None:
    store = Store.open(sqlite_url)
    rows = [_row(f"{n:05d}", f"p{n}") for n in range(3000)]
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", rows, "r1")
        store.mark_mapped(conn, "erp", "orders", [(r.source_id, r.hash) for r in rows[:2990]])
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_rest: Any) -> None:
        if "FROM raw_state" in sql and "pending" in sql:
            statements.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", seen)
    batches = list(store.pending_batches("erp", "orders", batch_size=4))
    assert store.pending_count("erp", "orders") == 10
    event.remove(store.engine, "before_cursor_execute", seen)
    assert [sid for batch in batches for sid, _p, _h in batch] == [r.source_id for r in rows[2990:]]
    assert statements
    with store.engine.connect() as conn:
        for sql, params in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            # the pending ones alone, not every staged record of the entity by primary key
            assert any("USING INDEX ix_raw_state_pending" in str(step) for step in plan), sql
    store.dispose()


def test_money_sums_stay_exact(store_url: str) -> None:
    store = Store.open(store_url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "source": "erp",
            "source_id": str(i),
            "customer_id": "c",
            "number": str(i),
            "ordered_at": now,
            "status": "confirmed",
            "currency": "EUR",
            "net_total": Decimal("0.10"),
            "gross_total": Decimal("0.10"),
            "data": {},
            "hash": "x",
            "updated_at": now,
            "run_id": "r",
        }
        for i in range(10)
    ]
    with store.begin() as conn:
        store.upsert(conn, t.orders, rows, ["source", "source_id"])
        total = conn.execute(select(func.sum(t.orders.c.gross_total))).scalar()
        one = conn.execute(select(t.orders.c.gross_total).limit(1)).scalar()
    assert money_or_zero(total) == Decimal("1.00")
    assert one == Decimal("0.1")


def test_datetimes_come_back_timezone_aware_utc(store_url: str) -> None:
    store = Store.open(store_url)
    berlin = timezone(timedelta(hours=1))
    store.start_run(
        "r1", trigger="test", window_start=datetime(2026, 1, 1, 1, tzinfo=berlin), window_end=None
    )
    run = store.run("r1")
    assert run is not None
    assert run["window_start"] == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert run["window_start"].tzinfo is not None


def test_second_sync_lock_is_refused_naming_the_holder(store_url: str) -> None:
    store = Store.open(store_url)
    store.acquire_lock("sync", "run-a", stale_after=timedelta(hours=1))
    with pytest.raises(StoreError, match="run-a"):
        store.acquire_lock("sync", "run-b", stale_after=timedelta(hours=1))
    store.release_lock("sync", "run-a")
    store.acquire_lock("sync", "run-b", stale_after=timedelta(hours=1))


def test_stale_lock_is_broken(store_url: str) -> None:
    store = Store.open(store_url)
    store.acquire_lock("sync", "run-a", stale_after=timedelta(hours=1))
    store.acquire_lock("sync", "run-b", stale_after=timedelta(seconds=-1))
    with store.engine.connect() as conn:
        assert conn.execute(select(t.locks.c.run_id)).scalar() == "run-b"


AIRFLOW_OWNER = "airflow concord_nightly manual__2026-11-02T02:00:00+00:00"


def test_the_run_holding_the_lock_takes_it_again_and_another_run_is_told_its_id(
    store_url: str,
) -> None:
    store = Store.open(store_url)
    store.acquire_lock("sync", "af_night", stale_after=timedelta(hours=1), owner=AIRFLOW_OWNER)
    store.acquire_lock("sync", "af_night", stale_after=timedelta(hours=1), owner=AIRFLOW_OWNER)
    with pytest.raises(LockBusy, match=r"airflow concord_nightly manual__.*run af_night") as busy:
        store.acquire_lock("sync", "cli-run", stale_after=timedelta(hours=1))
    assert busy.value.run_id == "af_night" and busy.value.retriable
    assert store.heartbeat_lock("sync", "af_night") is True
    assert store.heartbeat_lock("sync", "cli-run") is False
    store.release_lock("sync", "cli-run")  # not the holder: nothing happens
    assert store.lock_holder("sync")["run_id"] == "af_night"  # type: ignore[index]


def test_an_airflow_runs_lock_is_broken_by_heartbeat_age_only(store_url: str) -> None:
    store = Store.open(store_url)
    old = datetime.now(UTC) - timedelta(hours=2)
    with store.begin() as conn:
        conn.execute(
            t.locks.insert().values(
                name="sync",
                owner=AIRFLOW_OWNER,
                run_id="af_dead",
                acquired_at=old,
                heartbeat_at=old,
            )
        )
    with pytest.raises(LockBusy, match="af_dead"):  # not a pid of this host: age decides
        store.acquire_lock("sync", "cli-run", stale_after=timedelta(hours=3))
    store.acquire_lock("sync", "cli-run", stale_after=timedelta(hours=1))  # its worker died
    assert store.lock_holder("sync")["run_id"] == "cli-run"  # type: ignore[index]


def test_a_held_lock_is_heartbeated_in_the_background(store_url: str) -> None:
    from concord.pipeline import lifecycle

    store = Store.open(store_url)
    store.acquire_lock("sync", "r-beat", stale_after=timedelta(hours=1))
    before = store.lock_holder("sync")["heartbeat_at"]  # type: ignore[index]
    ctx = SimpleNamespace(store=store, run_id="r-beat")
    with lifecycle.heartbeating(ctx, every=timedelta(seconds=0.05)):  # type: ignore[arg-type]
        deadline = time.monotonic() + 5
        while store.lock_holder("sync")["heartbeat_at"] == before:  # type: ignore[index]
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)


def test_checkpoint_and_watermark_round_trip(store_url: str) -> None:
    store = Store.open(store_url)
    with store.begin() as conn:
        store.save_checkpoint(
            conn,
            "erp",
            "orders",
            cursor="2026-01-01T00:00:00Z",
            checkpoint='{"url": "/x"}',
            checkpoint_cursor="2026-02-01T00:00:00Z",
            run_id="r1",
        )
    state = store.watermark("erp", "orders")
    assert state.cursor == "2026-01-01T00:00:00Z"
    assert state.checkpoint == '{"url": "/x"}'
    assert store.watermark("erp", "customers").cursor is None


def test_lock_of_a_killed_process_on_this_host_is_broken(store_url: str) -> None:
    import socket
    import subprocess

    store = Store.open(store_url)
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            t.locks.insert().values(
                name="sync",
                owner=f"{socket.gethostname()}:{dead.pid}",
                run_id="killed",
                acquired_at=now,
                heartbeat_at=now,
            )
        )
    store.acquire_lock("sync", "next", stale_after=timedelta(hours=1))
    with store.engine.connect() as conn:
        assert conn.execute(select(t.locks.c.run_id)).scalar() == "next"


def test_migrations_have_a_single_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from concord.store.store import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1


def test_a_missing_sqlite_folder_is_refused_not_created(tmp_path: Path) -> None:
    from concord.errors import StoreError

    url = f"sqlite:///{tmp_path / 'typo' / 'deeper' / 'concord.db'}"
    with pytest.raises(StoreError, match=r"store folder .*typo/deeper does not exist"):
        Store.open(url)
    assert not (tmp_path / "typo").exists()


def test_a_reading_command_does_not_create_an_empty_store(tmp_path: Path) -> None:
    from concord.errors import StoreError

    url = f"sqlite:///{tmp_path / 'concord.db'}"
    with pytest.raises(StoreError, match=r"no store at .*concord\.db"):
        Store.open(url, create=False)
    assert not (tmp_path / "concord.db").exists()
    Store.open(url).dispose()
    Store.open(url, create=False).dispose()


def test_an_unsupported_store_url_says_what_is_supported() -> None:
    from concord.errors import StoreError

    with pytest.raises(StoreError, match=r"mysql is not supported.*SQLite.*PostgreSQL"):
        Store("mysql://concord@db/concord")


def test_a_sqlite_store_checkpoints_every_40_mib_and_widens_a_bulk_writers_cache(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'concord.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 10000
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -2000  # the default
        store.widen_cache(conn)
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -65536  # KiB: the map's
        store.widen_cache(conn, STAGING_CACHE_KIB)
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -16384  # each stager's
        with pytest.raises(ValueError, match="no page cache of 1000 KiB"):
            store.widen_cache(conn, 1000)


def test_release_idle_closes_pooled_sqlite_connections_and_the_store_goes_on(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'concord.db'}")
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", [_row("1", "{}")], "run-1")
    pool = store.engine.pool
    assert pool.checkedin() >= 1  # type: ignore[attr-defined]
    store.release_idle()
    assert store.engine.pool is not pool  # the old pool and its idle connections are closed
    with store.engine.connect() as conn:
        staged = conn.execute(select(func.count()).select_from(t.raw_records)).scalar_one()
    assert staged == 1


def test_release_idle_keeps_an_in_memory_sqlite_store() -> None:
    store = Store.open("sqlite://")
    with store.begin() as conn:
        store.stage(conn, "erp", "orders", [_row("1", "{}")], "run-1")
    store.release_idle()
    with store.engine.connect() as conn:
        staged = conn.execute(select(func.count()).select_from(t.raw_records)).scalar_one()
    assert staged == 1
