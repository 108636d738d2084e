"""Lifecycle flows and faster metrics (#13).

Revision ID: b13f10e5c013
Revises: a12d15ba7c12
Create Date: 2026-12-01 17:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision: str = 'b13f10e5c013'
down_revision: str | Sequence[str] | None = 'a12d15ba7c12'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
