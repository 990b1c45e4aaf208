"""the daily 360 figures in a narrow table of their own (customer360_daily)

A night rewrote every kept customer's daily figures inside its whole JSON row (json_set /
jsonb ||); now they are a narrow row of their own, and the wide row changes only with the
customer's documents. The stored rows are split as they are, so no rebuild is needed.

Revision ID: 0016_i19_daily_table
Revises: 0015_i19_documents_by_customer
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from concord.hashing import json_digest
from concord.store.types import UtcDateTime

revision = "0016_i19_daily_table"
down_revision = "0015_i19_documents_by_customer"
branch_labels = None
depends_on = None

# the daily fields as this revision split them (concord.customer360.stored.DAILY then)
DAILY = (
    "as_of",
    "days_since_last_order",
    "erp_receivable",
    "erp_receivable_difference",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
    "p_alive",
    "churn",
    "updated_at",
    "content_hash",
)
CHUNK = 2000


def _tables() -> tuple[sa.TableClause, sa.TableClause]:
    wide = sa.table(
        "customer360",
        sa.column("concord_id", sa.String()),
        sa.column("data", sa.JSON()),
        sa.column("content_hash", sa.String()),
        sa.column("base_hash", sa.String()),
        sa.column("value_tier", sa.String()),
        sa.column("updated_at", UtcDateTime()),
        sa.column("run_id", sa.String()),
    )
    daily = sa.table(
        "customer360_daily",
        sa.column("concord_id", sa.String()),
        sa.column("data", sa.JSON()),
        sa.column("content_hash", sa.String()),
        sa.column("value_tier", sa.String()),
        sa.column("updated_at", UtcDateTime()),
        sa.column("run_id", sa.String()),
    )
    return wide, daily


def upgrade() -> None:
    op.create_table(
        "customer360_daily",
        sa.Column("concord_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("value_tier", sa.String(length=1), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("concord_id", name=op.f("pk_customer360_daily")),
    )
    wide, daily = _tables()
    conn = op.get_bind()
    after = ""
    while True:
        rows = conn.execute(
            sa.select(
                wide.c.concord_id,
                wide.c.data,
                wide.c.content_hash,
                wide.c.base_hash,
                wide.c.value_tier,
                wide.c.updated_at,
                wide.c.run_id,
            )
            .where(wide.c.concord_id > after)
            .order_by(wide.c.concord_id)
            .limit(CHUNK)
        ).all()
        if not rows:
            break
        after = rows[-1].concord_id
        days: list[dict[str, Any]] = []
        bases: list[dict[str, Any]] = []
        for r in rows:
            data = dict(r.data)
            days.append(
                {
                    "concord_id": r.concord_id,
                    "data": {k: data.pop(k) for k in DAILY if k in data},
                    "content_hash": r.content_hash,
                    "value_tier": r.value_tier,
                    "updated_at": r.updated_at,
                    "run_id": r.run_id,
                }
            )
            # a row from before base hashes (0013): its documents figures' hash, as the build
            # hashes them
            bases.append({"k": r.concord_id, "d": data, "b": r.base_hash or json_digest(data)})
        conn.execute(
            wide.update()
            .where(wide.c.concord_id == sa.bindparam("k"))
            .values(data=sa.bindparam("d", type_=sa.JSON()), base_hash=sa.bindparam("b")),
            bases,
        )
        conn.execute(daily.insert(), days)
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.alter_column("base_hash", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("content_hash")
        batch_op.drop_column("value_tier")


def downgrade() -> None:
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value_tier", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("content_hash", sa.String(length=32), nullable=True))
        batch_op.alter_column("base_hash", existing_type=sa.String(length=32), nullable=True)
    wide, daily = _tables()
    conn = op.get_bind()
    for r in conn.execute(sa.select(daily)).all():
        base = conn.execute(
            sa.select(wide.c.data).where(wide.c.concord_id == r.concord_id)
        ).scalar()
        conn.execute(
            wide.update()
            .where(wide.c.concord_id == r.concord_id)
            .values(
                data={**dict(base or {}), **dict(r.data)},
                content_hash=r.content_hash,
                value_tier=r.value_tier,
            )
        )
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.alter_column("content_hash", existing_type=sa.String(length=32), nullable=False)
    op.drop_table("customer360_daily")
