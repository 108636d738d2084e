"""Lifecycle flows and faster metrics (#13).

Revision ID: b13f10e5c013
Revises: a12d15ba7c12
Create Date: 2026-12-01 17:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # refunds and geo (#13 ingest)
from alembic import op

import bot.db  # refunds and geo (#13 ingest)

# revision identifiers, used by Alembic.
revision: str = 'b13f10e5c013'
down_revision: str | Sequence[str] | None = 'a12d15ba7c12'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # refunds and geo (#13 ingest)
    op.create_table('order_refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('shop_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_external_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('amount', bot.db.Money(precision=14, scale=4), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('refunded_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', bot.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('order_refunds', schema=None) as batch_op:
        batch_op.create_index(
            'uq_order_refunds', ['shop_id', 'order_external_id', 'external_id'], unique=True
        )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('refunded_total', bot.db.Money(precision=14, scale=4), nullable=True)
        )
    # end of refunds and geo (#13 ingest)
    # segment count and metrics refresh speed (#13 bench)
    op.create_index(
        "ix_orders_customer_status",
        "orders",
        ["shop_id", "customer_id", "status"],
        unique=False,
        postgresql_include=["id"],
    )
    op.drop_index("ix_order_items_order_id", table_name="order_items")
    op.create_index(
        "ix_order_items_order_category",
        "order_items",
        ["order_id", "category"],
        unique=False,
    )
    op.drop_index("ix_customer_metrics_shop_last_order", table_name="customer_metrics")
    if op.get_bind().dialect.name == "postgresql":  # how common each lower(category) is
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS st_order_items_category_lower"
            " ON (lower(category)) FROM order_items"
        )
        op.execute("ANALYZE order_items")
    # end of segment count and metrics refresh speed (#13 bench)


def downgrade() -> None:
    """Downgrade schema."""
    # segment count and metrics refresh speed (#13 bench)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_order_items_category_lower")
    op.create_index(
        "ix_customer_metrics_shop_last_order",
        "customer_metrics",
        ["shop_id", "last_order_at"],
        unique=False,
    )
    op.drop_index("ix_order_items_order_category", table_name="order_items")
    op.create_index("ix_order_items_order_id", "order_items", ["order_id"], unique=False)
    op.drop_index("ix_orders_customer_status", table_name="orders")
    # end of segment count and metrics refresh speed (#13 bench)
    # refunds and geo (#13 ingest)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('refunded_total')
    with op.batch_alter_table('order_refunds', schema=None) as batch_op:
        batch_op.drop_index('uq_order_refunds')
    op.drop_table('order_refunds')
    # end of refunds and geo (#13 ingest)
