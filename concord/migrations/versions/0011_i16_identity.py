"""identity: trained models per run, the review queue, related golden ids, link fingerprints

Revision ID: 0011_i16_identity
Revises: 0010_i14_lossless
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import concord.store.types

revision = "0011_i16_identity"
down_revision = "0010_i14_lossless"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("golden", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_concord_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=32), nullable=True))
    op.create_table(
        "identity_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", concord.store.types.UtcDateTime(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_models")),
    )
    with op.batch_alter_table("identity_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_models_run_id"), ["run_id"], unique=False)
    op.create_table(
        "identity_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", concord.store.types.UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("records", sa.JSON(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("bridges", sa.JSON(), nullable=False),
        sa.Column("decided_at", concord.store.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_reviews")),
    )


def downgrade() -> None:
    op.drop_table("identity_reviews")
    with op.batch_alter_table("identity_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_models_run_id"))
    op.drop_table("identity_models")
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
    with op.batch_alter_table("golden", schema=None) as batch_op:
        batch_op.drop_column("parent_concord_id")
