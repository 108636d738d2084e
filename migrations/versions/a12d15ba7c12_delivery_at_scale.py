"""Delivery at scale (#12): the claim index and per-shop look-ups.

Revision ID: a12d15ba7c12
Revises: 3ccefd8becb2
Create Date: 2026-12-01 17:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision: str = 'a12d15ba7c12'
down_revision: str | Sequence[str] | None = '3ccefd8becb2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # One bot's claim reads (shop, scheduled, lane) ranges in (due_at, id) order.
    op.create_index(
        "ix_outbox_shop_claim",
        "outbox",
        ["shop_id", "state", "priority", "due_at", "id", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_outbox_shop_claim", table_name="outbox")
