"""incremental 360: per-customer inputs, the builds, run-id indexes on the canonical rows

Revision ID: 0012_i19_incremental_360
Revises: 0011_i16_identity
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.store.types

revision = "0012_i19_incremental_360"
down_revision = "0011_i16_identity"
branch_labels = None
depends_on = None

RUN_ID_TABLES = (
    "customers",
    "orders",
    "shipments",
    "invoices",
    "payments",
    "exchange_rates",
    "identity_links",
)


def upgrade() -> None:
    for table in RUN_ID_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_run_id"), ["run_id"], unique=False)
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_invoice_id"), ["invoice_id"], unique=False)
    op.create_table(
        "customer360_inputs",
        sa.Column("concord_id", sa.String(length=32), nullable=False),
        sa.Column("counts", sa.String(length=200), nullable=False),
        sa.Column("has_row", sa.Boolean(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.String(length=64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("records", sa.JSON(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("boundary_day", sa.Date(), nullable=True),
        sa.Column("boundary_at", concord.store.types.UtcDateTime(), nullable=True),
        sa.Column("fx_day", sa.Date(), nullable=True),
        sa.Column("today_fx", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("concord_id", name=op.f("pk_customer360_inputs")),
    )
    with op.batch_alter_table("customer360_inputs", schema=None) as batch_op:
        for column in ("boundary_day", "boundary_at", "fx_day"):
            batch_op.create_index(
                batch_op.f(f"ix_customer360_inputs_{column}"), [column], unique=False
            )
    op.create_table(
        "customer360_builds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("built_at", concord.store.types.UtcDateTime(), nullable=False),
        sa.Column("as_of", concord.store.types.UtcDateTime(), nullable=False),
        sa.Column("today", sa.Date(), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("rates", sa.JSON(), nullable=False),
        sa.Column("seen_runs", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer360_builds")),
    )


def downgrade() -> None:
    op.drop_table("customer360_builds")
    with op.batch_alter_table("customer360_inputs", schema=None) as batch_op:
        for column in ("boundary_day", "boundary_at", "fx_day"):
            batch_op.drop_index(batch_op.f(f"ix_customer360_inputs_{column}"))
    op.drop_table("customer360_inputs")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_invoice_id"))
    for table in RUN_ID_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_run_id"))
