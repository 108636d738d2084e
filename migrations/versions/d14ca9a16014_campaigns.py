"""Promo campaigns (#14): campaigns and their recipients.

Revision ID: d14ca9a16014
Revises: c15a6e175015
Create Date: 2026-12-01 17:05:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.db
import bot.models

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# revision identifiers, used by Alembic.
revision: str = 'd14ca9a16014'
down_revision: str | Sequence[str] | None = 'c15a6e175015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('campaigns',
    sa.Column('id', ID, nullable=False),
    sa.Column('shop_id', ID, nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('spec', bot.models.JSONType, nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('send_at', bot.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('local_time', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('started_at', bot.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fanned_out_at', bot.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_shop', ['shop_id', 'id'], unique=False)

    op.create_table('campaign_recipients',
    sa.Column('id', ID, nullable=False),
    sa.Column('campaign_id', ID, nullable=False),
    sa.Column('shop_id', ID, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('variant', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('outbox_id', ID, nullable=True),
    sa.Column('follow_up_id', ID, nullable=True),
    sa.Column('created_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.create_index('uq_campaign_recipients', ['campaign_id', 'customer_id'], unique=True)
        batch_op.create_index('ix_campaign_recipients_outbox', ['outbox_id'], unique=False)
        batch_op.create_index('ix_campaign_recipients_follow_up', ['follow_up_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_recipients_follow_up')
        batch_op.drop_index('ix_campaign_recipients_outbox')
        batch_op.drop_index('uq_campaign_recipients')
    op.drop_table('campaign_recipients')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_shop')
    op.drop_table('campaigns')
