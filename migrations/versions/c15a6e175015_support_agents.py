"""Support agents in Telegram (#15): conversations and relayed messages.

Revision ID: c15a6e175015
Revises: b13f10e5c013
Create Date: 2026-12-01 17:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c15a6e175015"
down_revision: str | Sequence[str] | None = "b13f10e5c013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.types.TypeEngine:
    from bot.db import UTCDateTime

    return UTCDateTime(timezone=True)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("support_open_since", _ts(), nullable=True))
    op.create_table(
        "support_conversations",
        sa.Column("id", _big_id(), primary_key=True, nullable=False),
        sa.Column(
            "shop_id", _big_id(), sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "customer_id",
            _big_id(),
            sa.ForeignKey("customers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("last_customer_at", _ts(), nullable=True),
        sa.Column("first_response_at", _ts(), nullable=True),
        sa.Column("last_answer_at", _ts(), nullable=True),
        sa.Column("undelivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("closed_at", _ts(), nullable=True),
    )
    op.create_index(
        "ix_support_conversations_user",
        "support_conversations",
        ["shop_id", "telegram_user_id", "state"],
    )
    op.create_index(
        "uq_support_conversations_open",
        "support_conversations",
        ["shop_id", "telegram_user_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "ix_support_conversations_state",
        "support_conversations",
        ["shop_id", "state", "opened_at"],
    )
    op.create_table(
        "support_topics",
        sa.Column("id", _big_id(), primary_key=True, nullable=False),
        sa.Column(
            "shop_id", _big_id(), sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
    )
    op.create_index(
        "uq_support_topics_user",
        "support_topics",
        ["shop_id", "chat_id", "telegram_user_id"],
        unique=True,
    )
    op.create_index(
        "uq_support_topics_thread",
        "support_topics",
        ["shop_id", "chat_id", "thread_id"],
        unique=True,
    )
    op.create_table(
        "support_messages",
        sa.Column("id", _big_id(), primary_key=True, nullable=False),
        sa.Column(
            "shop_id", _big_id(), sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "conversation_id",
            _big_id(),
            sa.ForeignKey("support_conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("direction", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("content", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=True),
        sa.Column("file_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("source_message_id", sa.BigInteger(), nullable=True),
        sa.Column("copy_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("copy_message_id", sa.BigInteger(), nullable=True),
        sa.Column("agent_user_id", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", _big_id(), nullable=True),
        sa.Column("relay", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("relayed_at", _ts(), nullable=True),
    )
    op.create_index(
        "uq_support_messages_source",
        "support_messages",
        ["shop_id", "source_chat_id", "source_message_id"],
        unique=True,
    )
    op.create_index("ix_support_messages_relay", "support_messages", ["relay", "shop_id", "id"])
    op.create_index(
        "ix_support_messages_conversation", "support_messages", ["conversation_id", "id"]
    )
    op.create_index(
        "ix_support_messages_copy",
        "support_messages",
        ["shop_id", "copy_chat_id", "copy_message_id"],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("support_messages")
    op.drop_table("support_topics")
    op.drop_table("support_conversations")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("support_open_since")
