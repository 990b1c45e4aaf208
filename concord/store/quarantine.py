"""Quarantine: the canonical rows of records that turned bad, set aside until they map again.

The one rule for a record whose new payload the mapping refuses: its reject is open, and its
last good canonical row moves from the canonical table to ``quarantine`` in the same transaction.
So every reader of the canonical tables (resolve, the 360, the push, reconcile) sees only rows
that map now, with no filter to forget, and the last good values stay in the store to inspect.
When the record maps again its new row is written and its quarantine row dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, Table, delete, select

from concord.store import tables as t
from concord.store.store import Store
from concord.utc import utcnow

CHUNK = 900


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


def quarantine_rows(
    store: Store,
    conn: Connection,
    table: Table,
    *,
    source: str,
    entity: str,
    source_ids: Sequence[str],
    run_id: str,
) -> int:
    """Move the canonical rows of ``source_ids`` (now rejected) into quarantine; return how many."""
    moved = 0
    now = utcnow()
    for chunk in _chunks(source_ids):
        rows = [
            {
                "canonical_entity": table.name,
                "source": source,
                "source_id": str(sid),
                "entity": entity,
                "data": data,
                "hash": h,
                "mapping_fp": fp,
                "run_id": run_id,
                "quarantined_at": now,
            }
            for sid, data, h, fp in conn.execute(
                select(table.c.source_id, table.c.data, table.c.hash, table.c.mapping_fp).where(
                    table.c.source == source, table.c.source_id.in_(chunk)
                )
            )
        ]
        if not rows:
            continue
        store.upsert(conn, t.quarantine, rows, ["canonical_entity", "source", "source_id"])
        conn.execute(
            delete(table).where(
                table.c.source == source, table.c.source_id.in_([r["source_id"] for r in rows])
            )
        )
        moved += len(rows)
    return moved


def release(conn: Connection, table: Table, *, source: str, source_ids: Sequence[str]) -> None:
    """Drop the quarantine rows of records that map again (their new row is canonical)."""
    q = t.quarantine
    for chunk in _chunks(source_ids):
        conn.execute(
            delete(q).where(
                q.c.canonical_entity == table.name, q.c.source == source, q.c.source_id.in_(chunk)
            )
        )
