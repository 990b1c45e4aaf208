"""Merge the push-state and shard-watermark branches into one line of history.

Revision ID: 0007_merge
Revises: 0005_push, 0006_shards
"""

from __future__ import annotations

revision = "0007_merge"
down_revision = ("0005_push", "0006_shards")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
