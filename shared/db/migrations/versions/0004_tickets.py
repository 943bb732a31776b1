"""support-desk tools: tickets, and sessions marked for a person

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

A tool with side effects writes under its call's idempotency key (turn id + call index),
unique here, so a call retried after a crash, or re-run after an approval pause, writes
once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("priority", sa.String(16), nullable=False, server_default="normal"),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_tickets_session_id", "tickets", ["session_id"])
    # escalate_to_human: the session waits for a person (a later change builds their side).
    op.add_column("sessions", sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sessions", sa.Column("escalation_reason", sa.Text, nullable=True))
    op.add_column("sessions", sa.Column("escalation_key", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "escalation_key")
    op.drop_column("sessions", "escalation_reason")
    op.drop_column("sessions", "escalated_at")
    op.drop_table("tickets")
