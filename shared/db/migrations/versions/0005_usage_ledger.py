"""usage ledger and per-user budgets

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

One row per turn and step (a model call, a tool call): reserved before the call, settled
after it. The key is the turn id and the step, so a retried activity or a crashed worker
overwrites its own row instead of charging again. No foreign key to sessions: deleting a
session removes its transcript, not what it spent (or a user could reset a budget).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_ledger",
        sa.Column("turn_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),  # model | tool
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),  # reserved | settled | released
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(14, 6), nullable=False, server_default="0"),
        # When the step was first reserved: the day and month it counts in.
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('reserved', 'settled', 'released')", name="status"),
        sa.CheckConstraint("kind IN ('model', 'tool')", name="kind"),
    )
    op.create_index("ix_usage_ledger_user_created", "usage_ledger", ["user_id", "created_at"])
    op.create_table(
        "user_budgets",
        sa.Column("user_id", sa.String(256), primary_key=True),
        # NULL: the BUDGET_* default; 0 is a limit of nothing.
        sa.Column("tokens_per_day", sa.BigInteger),
        sa.Column("tokens_per_month", sa.BigInteger),
        sa.Column("cost_per_day", sa.Numeric(14, 6)),
        sa.Column("cost_per_month", sa.Numeric(14, 6)),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("user_budgets")
    op.drop_table("usage_ledger")
