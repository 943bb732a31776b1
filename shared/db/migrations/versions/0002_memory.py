"""conversation memory: summary version, message embeddings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db.models import EMBEDDING_DIMENSIONS

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _vector_installed() -> bool:
    found = op.get_bind().execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'"))
    return found.scalar() is not None


def upgrade() -> None:
    # Bumped by every applied summary: a retried summarize activity sees it moved on and
    # never folds the same turns in twice.
    op.add_column(
        "sessions",
        sa.Column("summary_version", sa.Integer, nullable=False, server_default="0"),
    )
    if _vector_installed():
        op.execute(f"ALTER TABLE messages ADD COLUMN embedding vector({EMBEDDING_DIMENSIONS})")
        op.execute(
            "CREATE INDEX ix_messages_embedding ON messages "
            "USING hnsw (embedding vector_cosine_ops)"
        )


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS embedding")
    op.drop_column("sessions", "summary_version")
