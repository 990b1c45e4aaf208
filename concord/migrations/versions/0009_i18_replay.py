"""replay and quarantine: mapping fingerprints on raw and canonical rows, the quarantine table

Revision ID: 0009_i18_replay
Revises: 0008_i15_customer360
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.store.types

revision = "0009_i18_replay"
down_revision = "0008_i15_customer360"
branch_labels = None
depends_on = None

CANONICAL = ("customers", "orders", "shipments", "invoices", "payments", "exchange_rates")


def upgrade() -> None:
    # NULL fingerprints (rows mapped before this revision) re-map once on the next run.
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mapped_fp", sa.String(length=32), nullable=True))
    for name in CANONICAL:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("mapping_fp", sa.String(length=32), nullable=True))
    op.create_table(
        "quarantine",
        sa.Column("canonical_entity", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("entity", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("mapping_fp", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("quarantined_at", concord.store.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "canonical_entity", "source", "source_id", name=op.f("pk_quarantine")
        ),
    )


def downgrade() -> None:
    op.drop_table("quarantine")
    for name in CANONICAL:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("mapping_fp")
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.drop_column("mapped_fp")
