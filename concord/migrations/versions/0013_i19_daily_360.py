"""daily 360 figures patched in place (rows' base hash, builds' churn fit); normalised records

Revision ID: 0013_i19_daily_360
Revises: 0012_i19_incremental_360
Create Date: 2026-12-01 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_i19_daily_360"
down_revision = "0012_i19_incremental_360"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_records",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id", name=op.f("pk_identity_records")),
    )
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_hash", sa.String(length=32), nullable=True))
    with op.batch_alter_table("customer360_builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("churn_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer360_builds", schema=None) as batch_op:
        batch_op.drop_column("churn_params")
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.drop_column("base_hash")
    op.drop_table("identity_records")
