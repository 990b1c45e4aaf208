"""identity_resolves: what each resolve rested on, so a night can re-link only what it touched

Revision ID: 0017_i19_identity_resolves
Revises: 0016_i19_daily_table
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.store.types

revision = "0017_i19_identity_resolves"
down_revision = "0016_i19_daily_table"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_resolves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("resolved_at", concord.store.types.UtcDateTime(), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("relinked", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_resolves")),
    )


def downgrade() -> None:
    op.drop_table("identity_resolves")
