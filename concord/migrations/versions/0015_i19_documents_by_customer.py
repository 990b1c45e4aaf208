"""documents indexed by (source, customer_id): the 360 counts a customer's documents from it alone

Revision ID: 0015_i19_documents_by_customer
Revises: 0014_i19_raw_state
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0015_i19_documents_by_customer"
down_revision = "0014_i19_raw_state"
branch_labels = None
depends_on = None

DOCUMENTS = ("orders", "shipments", "invoices", "payments")


def upgrade() -> None:
    for table in DOCUMENTS:
        op.create_index(f"ix_{table}_source_customer", table, ["source", "customer_id"])
        op.drop_index(f"ix_{table}_customer_id", table_name=table)


def downgrade() -> None:
    for table in DOCUMENTS:
        op.create_index(f"ix_{table}_customer_id", table, ["customer_id"])
        op.drop_index(f"ix_{table}_source_customer", table_name=table)
