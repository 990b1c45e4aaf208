"""push state keeps what a target last accepted: properties, object type, source fingerprint

Revision ID: 0005_push
Revises: 0001
Create Date: 2026-11-23 11:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_push"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("push_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted_properties", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("object_type", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("source_hash", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_state", schema=None) as batch_op:
        batch_op.drop_column("source_hash")
        batch_op.drop_column("object_type")
        batch_op.drop_column("accepted_properties")
