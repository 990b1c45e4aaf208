"""What the store holds of one source entity: staged, pending, canonical and rejected records.

The reconciliation after the push (``concord.pipeline.reconcile``) checks four numbers: a
clean store has staged = canonical + rejected + pending. The gates before the push
(``concord.pipeline.gates``) need the staged and rejected counts and whether any record maps.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, and_, func, literal, select

from concord.store import tables as t


def canonical_of(table: Table, prefix: str = "", raw: Table = t.raw_records) -> Any:
    """The join of raw records (or their ``raw_state``) to the canonical rows mapped from them.

    Ids may be prefixed.
    """
    source_id = literal(prefix) + raw.c.source_id if prefix else raw.c.source_id
    return and_(table.c.source == raw.c.source, table.c.source_id == source_id)


PENDING_INDEX_SQLITE = "raw_state INDEXED BY ix_raw_state_pending"
"""``raw_state`` read through its partial index of the pending records, told to SQLite: without
statistics its planner walked the primary key over every staged record of the entity."""


def pending_count(conn: Connection, source: str, entity: str) -> int:
    """How many of the entity's staged records wait for the map stage (their ``raw_state``).

    Counted in the partial index of the pending ones (``PENDING_INDEX_SQLITE`` on SQLite).
    """
    if conn.dialect.name == "sqlite":
        sql = (
            f"SELECT count(*) FROM {PENDING_INDEX_SQLITE} "  # noqa: S608 - a constant
            "WHERE source = ? AND entity = ? AND pending"
        )
        return int(conn.exec_driver_sql(sql, (source, entity)).scalar_one())
    st = t.raw_state
    return int(
        conn.execute(
            select(func.count())
            .select_from(st)
            .where(st.c.source == source, st.c.entity == entity, st.c.pending)
        ).scalar_one()
    )


def staged_count(conn: Connection, source: str, entity: str) -> int:
    """How many records of the entity are staged (tombstones included)."""
    raw = t.raw_records
    return int(
        conn.execute(
            select(func.count())
            .select_from(raw)
            .where(raw.c.source == source, raw.c.entity == entity)
        ).scalar_one()
    )


def rejected_count(conn: Connection, source: str, entity: str) -> int:
    """How many of the entity's records have an open map reject."""
    rj = t.rejects
    return int(
        conn.execute(
            select(func.count(func.distinct(rj.c.source_id))).where(
                rj.c.source == source,
                rj.c.entity == entity,
                rj.c.stage == "map",
                rj.c.resolved_run.is_(None),
            )
        ).scalar_one()
    )


def _mapped(column: Any, source: str, entity: str, table: Table, prefix: str) -> Any:
    """``column`` over the entity's mapped records that have their canonical row."""
    st = t.raw_state
    return (
        select(column)
        .select_from(st.join(table, canonical_of(table, prefix, st)))
        .where(st.c.source == source, st.c.entity == entity, st.c.pending.is_(False))
    )


def any_canonical(
    conn: Connection, source: str, entity: str, table: Table, prefix: str = ""
) -> bool:
    """Whether at least one mapped record of the entity has its canonical row (one probe).

    The gates ask only this of the canonical rows: counting them all joined every staged
    record to its row (0.3 s of a medium night, more at full scale).
    """
    probe = _mapped(t.raw_state.c.source_id, source, entity, table, prefix).limit(1)
    return conn.execute(probe).first() is not None


def canonical_count(
    conn: Connection, source: str, entity: str, table: Table, prefix: str = ""
) -> int:
    """How many mapped records of the entity have their canonical row in ``table``."""
    return int(conn.execute(_mapped(func.count(), source, entity, table, prefix)).scalar_one())
