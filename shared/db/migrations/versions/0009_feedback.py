"""feedback: a user's rating of an assistant turn (thumbs up or down, a reason)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

One rating per turn: a second rating replaces the first (`updated_at` moves). Owned
through its session: deleting the session deletes its ratings. `updated_at` is indexed
for `chatbot feedback export --since`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("turn_id", UUID(as_uuid=True), nullable=False),
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey(
                "sessions.id", ondelete="CASCADE", name="fk_feedback_session_id_sessions"
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("turn_id", name="pk_feedback"),
        sa.CheckConstraint("rating IN ('up', 'down')", name="ck_feedback_rating"),
        sa.CheckConstraint("char_length(reason) <= 1000", name="ck_feedback_reason_length"),
    )
    op.create_index("ix_feedback_session_id", "feedback", ["session_id"])
    op.create_index("ix_feedback_updated_at", "feedback", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_updated_at", table_name="feedback")
    op.drop_index("ix_feedback_session_id", table_name="feedback")
    op.drop_table("feedback")
