"""shard checkpoints: one row per (source, entity, shard) of a sharded extract

Revision ID: 0006_shards
Revises: 0001
Create Date: 2026-11-23 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.store.types

revision = "0006_shards"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shard_watermarks",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("entity", sa.String(length=100), nullable=False),
        sa.Column("shard", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("window_start", concord.store.types.UtcDateTime(), nullable=True),
        sa.Column("window_end", concord.store.types.UtcDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("high_cursor", sa.String(length=100), nullable=True),
        sa.Column("updated_at", concord.store.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", "shard", name=op.f("pk_shard_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("shard_watermarks")
