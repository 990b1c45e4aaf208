"""lossless extraction: a checkpoint's fixed window end, tombstones, record states, canonical hash

Revision ID: 0010_i14_lossless
Revises: 0009_i18_replay
Create Date: 2026-12-01 12:00:00

``watermarks.window_end`` keeps the fixed end of the window an unfinished extract pulls, so a
resume pulls the same window; ``watermarks.swept_at`` when the entity's ids were last swept.
``raw_records.deleted_at`` marks a tombstone: an id the source no longer lists (an id sweep).
Canonical rows get ``state`` (NULL: live; ``archived``; ``deleted``). Staging hashes are
recomputed over the canonical form of each payload (keys sorted, one number format), so
upgrading does not report every record as changed on the next pull.
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

import concord.store.types
from concord.hashing import record_digest

revision = "0010_i14_lossless"
down_revision = "0009_i18_replay"
branch_labels = None
depends_on = None

CANONICAL = ("customers", "orders", "shipments", "invoices", "payments", "exchange_rates")
BATCH = 2000


def _rehash() -> None:
    conn = op.get_bind()
    raw = sa.table(
        "raw_records",
        sa.column("source", sa.String),
        sa.column("entity", sa.String),
        sa.column("source_id", sa.String),
        sa.column("payload", sa.LargeBinary),
        sa.column("hash", sa.String),
    )
    key = (raw.c.source, raw.c.entity, raw.c.source_id)
    after: tuple[str, str, str] = ("", "", "")
    while True:
        rows = conn.execute(
            sa.select(*key, raw.c.payload, raw.c.hash)
            .where(sa.tuple_(*key) > sa.tuple_(*(sa.literal(v) for v in after)))
            .order_by(*key)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        changes = []
        for source, entity, sid, payload, old in rows:
            try:
                new = record_digest(orjson.loads(payload))
            except orjson.JSONDecodeError:
                continue
            if new != old:
                changes.append({"s": source, "e": entity, "i": sid, "h": new})
        if changes:
            conn.execute(
                raw.update()
                .where(
                    raw.c.source == sa.bindparam("s"),
                    raw.c.entity == sa.bindparam("e"),
                    raw.c.source_id == sa.bindparam("i"),
                )
                .values(hash=sa.bindparam("h")),
                changes,
            )
        after = (rows[-1][0], rows[-1][1], rows[-1][2])


def upgrade() -> None:
    with op.batch_alter_table("watermarks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("window_end", concord.store.types.UtcDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("swept_at", concord.store.types.UtcDateTime(), nullable=True))
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", concord.store.types.UtcDateTime(), nullable=True)
        )
    for name in CANONICAL:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("state", sa.String(length=16), nullable=True))
    _rehash()


def downgrade() -> None:
    for name in CANONICAL:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("state")
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("watermarks", schema=None) as batch_op:
        batch_op.drop_column("swept_at")
        batch_op.drop_column("window_end")
