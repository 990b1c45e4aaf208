"""What the store holds of one source entity: staged, pending, canonical and rejected records.

The same four numbers serve the gates before the push (``concord.pipeline.gates``) and the
reconciliation after it (``concord.pipeline.reconcile``): a clean store has
staged = canonical + rejected + pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, func, literal, select

from concord.store import tables as t


@dataclass(frozen=True, slots=True)
class EntityCounts:
    """Counts over the whole store for one source entity (``rejected``: open map rejects)."""

    staged: int
    pending: int
    canonical: int
    rejected: int


def canonical_of(table: Table, prefix: str = "", raw: Table = t.raw_records) -> Any:
    """The join of raw records (or their ``raw_state``) to the canonical rows mapped from them.

    Ids may be prefixed.
    """
    source_id = literal(prefix) + raw.c.source_id if prefix else raw.c.source_id
    return and_(table.c.source == raw.c.source, table.c.source_id == source_id)


def pending_count(conn: Connection, source: str, entity: str) -> int:
    """How many of the entity's staged records wait for the map stage (their ``raw_state``)."""
    st = t.raw_state
    return int(
        conn.execute(
            select(func.count())
            .select_from(st)
            .where(st.c.source == source, st.c.entity == entity, st.c.pending)
        ).scalar_one()
    )


def entity_counts(
    conn: Connection, source: str, entity: str, table: Table, prefix: str = ""
) -> EntityCounts:
    """Staged, pending, canonical (in ``table``) and open-map-rejected records of the entity.

    Canonical rows are counted through the raw records they were mapped from, so two entities
    of one source mapping into the same canonical table (``id_prefix``) are counted apart.
    """
    raw, st, rj = t.raw_records, t.raw_state, t.rejects
    staged = conn.execute(
        select(func.count()).select_from(raw).where(raw.c.source == source, raw.c.entity == entity)
    ).scalar_one()
    # the map state of each staged record (``raw_state``: a record without one is counted
    # staged and nothing else, so the sum shows it)
    at_source = and_(st.c.source == source, st.c.entity == entity)
    pending = pending_count(conn, source, entity)
    canonical = conn.execute(
        select(func.count())
        .select_from(st.join(table, canonical_of(table, prefix, st)))
        .where(at_source, st.c.pending.is_(False))
    ).scalar_one()
    rejected = conn.execute(
        select(func.count(func.distinct(rj.c.source_id))).where(
            rj.c.source == source,
            rj.c.entity == entity,
            rj.c.stage == "map",
            rj.c.resolved_run.is_(None),
        )
    ).scalar_one()
    return EntityCounts(int(staged), int(pending), int(canonical), int(rejected))
