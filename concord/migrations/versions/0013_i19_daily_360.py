"""daily 360 figures patched in place: the rows' base hash, the builds' churn parameters

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
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_hash", sa.String(length=32), nullable=True))
    with op.batch_alter_table("customer360_builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("churn_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer360_builds", schema=None) as batch_op:
        batch_op.drop_column("churn_params")
    with op.batch_alter_table("customer360", schema=None) as batch_op:
        batch_op.drop_column("base_hash")
