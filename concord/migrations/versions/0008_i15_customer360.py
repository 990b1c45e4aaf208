"""customer 360 figures: ERP customer numbers and dated exchange rates

Revision ID: 0008_i15_customer360
Revises: 0007_merge
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.store.types

revision = "0008_i15_customer360"
down_revision = "0007_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("number", sa.String(length=100), nullable=True))
        batch.create_index("ix_customers_number", ["number"])
    op.create_table(
        "exchange_rates",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("updated_at", concord.store.types.UtcDateTime(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id", name=op.f("pk_exchange_rates")),
    )


def downgrade() -> None:
    op.drop_table("exchange_rates")
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_number")
        batch.drop_column("number")
