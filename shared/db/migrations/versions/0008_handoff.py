"""handoff: a session handed to a person, and the messages people write in it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

`sessions.handoff` is the session's handoff as the workflow holds it (JSON: state
waiting or claimed, source, reason, when, which agent), null when the bot answers; the
queue is the sessions where it is set. Agents' messages are rows of role `agent`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("handoff", JSONB, nullable=True))
    op.create_index(
        "ix_sessions_handoff_queue",
        "sessions",
        [sa.text("(handoff->>'requested_at')")],
        postgresql_where=sa.text("handoff IS NOT NULL"),
    )
    op.drop_constraint("ck_messages_role", "messages", type_="check")
    op.create_check_constraint(
        "ck_messages_role", "messages", "role IN ('user', 'assistant', 'agent')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM messages WHERE role = 'agent'")
    op.drop_constraint("ck_messages_role", "messages", type_="check")
    op.create_check_constraint("ck_messages_role", "messages", "role IN ('user', 'assistant')")
    op.drop_index("ix_sessions_handoff_queue", table_name="sessions")
    op.drop_column("sessions", "handoff")
