"""sessions, messages and companies

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.db.models import COMPANY_SEARCH_DOCUMENT, EMBEDDING_DIMENSIONS

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _vector_available() -> bool:
    bind = op.get_bind()
    found = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    return found is not None


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("turn_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column(
            "last_activity_at", sa.DateTime(timezone=True), nullable=False, server_default=now
        ),
        sa.CheckConstraint("status IN ('active', 'idle', 'ended')", name="ck_sessions_status"),
    )
    op.create_index("ix_sessions_user_created", "sessions", ["user_id", "created_at"])

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid, primary_key=True),
        # Insertion order: history pages and "last K turns" read by it.
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("turn_id", sa.Uuid, nullable=False),
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("client_message_id", sa.String(128)),
        sa.Column("intent", sa.String(32)),
        sa.Column("tool_data", postgresql.JSONB),
        sa.Column("status", sa.String(16), nullable=False, server_default="complete"),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
        sa.CheckConstraint(
            "status IN ('complete', 'cancelled', 'failed')", name="ck_messages_status"
        ),
        sa.UniqueConstraint("session_id", "client_message_id", name="uq_messages_client_message"),
        sa.UniqueConstraint("turn_id", "role", name="uq_messages_turn_role"),
    )
    op.create_index("ix_messages_session_seq", "messages", ["session_id", "seq"])

    op.create_table(
        "companies",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("industry", sa.String(200), nullable=False, server_default=""),
        sa.Column("location", sa.String(200), nullable=False, server_default=""),
        sa.Column("contact", sa.String(300), nullable=False, server_default=""),
        sa.Column("capabilities", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.String(32), nullable=False, server_default="import"),
        sa.Column(
            "search",
            postgresql.TSVECTOR,
            sa.Computed(COMPANY_SEARCH_DOCUMENT, persisted=True),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.UniqueConstraint("name", "location", name="uq_companies_name_location"),
    )
    op.create_index("ix_companies_search", "companies", ["search"], postgresql_using="gin")

    # Vector search is optional: Postgres without pgvector keeps full-text search only.
    if _vector_available():
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        op.execute(f"ALTER TABLE companies ADD COLUMN embedding vector({EMBEDDING_DIMENSIONS})")
        op.execute(
            "CREATE INDEX ix_companies_embedding ON companies "
            "USING hnsw (embedding vector_cosine_ops)"
        )


def downgrade() -> None:
    op.drop_table("companies")
    op.drop_table("messages")
    op.drop_table("sessions")
    # The vector extension is left installed: other schemas in the database may use it.
