"""raw state: each raw record's map state (pending, mapping fingerprint, run) in a narrow table

Marking a record mapped rewrote its raw_records row, payload included, and the pending index;
the state now has a table of its own with a partial index of the pending records and an index of
the run that staged each payload (what reconcile reads of a run). Existing state moves both ways.

Revision ID: 0014_i19_raw_state
Revises: 0013_i19_daily_360
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_i19_raw_state"
down_revision = "0013_i19_daily_360"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_state",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("entity", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("mapped_fp", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", "source_id", name=op.f("pk_raw_state")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO raw_state (source, entity, source_id, hash, pending, mapped_fp, run_id) "
        "SELECT source, entity, source_id, hash, pending, mapped_fp, run_id FROM raw_records"
    )
    with op.batch_alter_table("raw_state", schema=None) as batch_op:
        batch_op.create_index(
            "ix_raw_state_pending",
            ["source", "entity", "source_id"],
            unique=False,
            sqlite_where=sa.text("pending"),
            postgresql_where=sa.text("pending"),
        )
        batch_op.create_index("ix_raw_state_run_id", ["source", "entity", "run_id"], unique=False)
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.drop_index("ix_raw_pending")
        batch_op.drop_column("mapped_fp")
        batch_op.drop_column("pending")


def downgrade() -> None:
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("mapped_fp", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE raw_records SET "
        "pending = (SELECT s.pending FROM raw_state s WHERE s.source = raw_records.source "
        "AND s.entity = raw_records.entity AND s.source_id = raw_records.source_id), "
        "mapped_fp = (SELECT s.mapped_fp FROM raw_state s WHERE s.source = raw_records.source "
        "AND s.entity = raw_records.entity AND s.source_id = raw_records.source_id)"
    )
    # a raw record without a state row (none should exist) is mapped again
    op.execute(
        sa.text("UPDATE raw_records SET pending = :yes WHERE pending IS NULL").bindparams(yes=True)
    )
    with op.batch_alter_table("raw_records", schema=None) as batch_op:
        batch_op.alter_column("pending", existing_type=sa.Boolean(), nullable=False)
        batch_op.create_index("ix_raw_pending", ["source", "entity", "pending"], unique=False)
    op.drop_table("raw_state")
