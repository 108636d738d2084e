"""Console pages at 100,000 customers (#16): indexes for reports, campaign reports and export.

Revision ID: f16c0501e0e1
Revises: e16a91c0de16
Create Date: 2026-12-01 20:30:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'f16c0501e0e1'
down_revision: str | Sequence[str] | None = 'e16a91c0de16'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREDITED = sa.text('attributed_outbox_id IS NOT NULL')


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(
            'ix_outbox_shop_kind_state', ['shop_id', 'kind', 'state', 'skip_reason'], unique=False
        )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(
            'ix_orders_attributed',
            ['attributed_outbox_id'],
            unique=False,
            sqlite_where=CREDITED,
            postgresql_where=CREDITED,
        )
    with op.batch_alter_table('promo_codes', schema=None) as batch_op:
        batch_op.create_index('ix_promo_codes_customer', ['shop_id', 'customer_id'], unique=False)
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.create_index(
            'ix_campaign_recipients_customer', ['shop_id', 'customer_id'], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_recipients_customer')
    with op.batch_alter_table('promo_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_promo_codes_customer')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_attributed')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_shop_kind_state')
