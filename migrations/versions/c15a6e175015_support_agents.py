"""Support agents in Telegram (#15): conversations and relayed messages.

Revision ID: c15a6e175015
Revises: b13f10e5c013
Create Date: 2026-12-01 17:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision: str = 'c15a6e175015'
down_revision: str | Sequence[str] | None = 'b13f10e5c013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
