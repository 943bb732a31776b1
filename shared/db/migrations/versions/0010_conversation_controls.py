"""conversation controls: what a second message does, reply versions, branches

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

- `sessions.on_busy`: what a message does while the session answers another, unless the
  message says (null: enqueue).
- `reply_versions`: every answer a regenerated turn had, `version` 1 the first; the
  assistant row in `messages` holds the one in use (`messages.version` of
  `messages.versions`), so every reader of the transcript sees that one.
- `sessions.parent_session_id`, `sessions.branched_at_turn`: a branch (an earlier message
  edited) is a session of its own, seeded with the parent's turns before that turn.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("on_busy", sa.String(16), nullable=True))
    op.create_check_constraint(
        "ck_sessions_on_busy",
        "sessions",
        "on_busy IS NULL OR on_busy IN ('enqueue', 'reject', 'interrupt', 'rollback')",
    )
    op.add_column(
        "sessions",
        sa.Column(
            "parent_session_id",
            sa.String(128),
            sa.ForeignKey("sessions.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )
    op.add_column("sessions", sa.Column("branched_at_turn", UUID(as_uuid=True), nullable=True))
    op.create_index(
        "ix_sessions_parent",
        "sessions",
        ["parent_session_id"],
        postgresql_where=sa.text("parent_session_id IS NOT NULL"),
    )
    op.add_column("messages", sa.Column("version", sa.Integer, server_default="1", nullable=False))
    op.add_column("messages", sa.Column("versions", sa.Integer, server_default="1", nullable=False))
    op.create_table(
        "reply_versions",
        sa.Column("turn_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("tool_data", JSONB, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        # The stream its tokens went to, and the regenerate request's idempotency key.
        sa.Column("stream_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("client_message_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("turn_id", "version", name="pk_reply_versions"),
        sa.UniqueConstraint(
            "turn_id", "client_message_id", name="uq_reply_versions_client_message"
        ),
    )


def downgrade() -> None:
    op.drop_table("reply_versions")
    op.drop_column("messages", "versions")
    op.drop_column("messages", "version")
    op.drop_index("ix_sessions_parent", table_name="sessions")
    op.drop_column("sessions", "branched_at_turn")
    op.drop_column("sessions", "parent_session_id")
    op.drop_constraint("ck_sessions_on_busy", "sessions", type_="check")
    op.drop_column("sessions", "on_busy")
