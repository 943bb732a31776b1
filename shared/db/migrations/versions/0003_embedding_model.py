"""which embedder made each stored vector

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Vectors of two models are not comparable: with the embedder recorded beside each vector,
search compares only vectors of the embedder in use, and memory re-embeds the others.
Vectors stored before this revision came from OpenAI's model (the only embedder then).

The HNSW index on messages goes: retrieval is an exact search within one session (an
approximate scan over all sessions filtered afterwards can miss a session's messages
entirely), so the index only slowed every embedding write.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("companies", "messages")


def _has_embedding(table: str) -> bool:
    found = op.get_bind().execute(
        sa.text(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = :t AND column_name = 'embedding'"
        ),
        {"t": table},
    )
    return found.scalar() is not None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_embedding")
    for table in TABLES:
        if _has_embedding(table):
            op.execute(f"ALTER TABLE {table} ADD COLUMN embedding_model text")
            op.execute(
                f"UPDATE {table} SET embedding_model = 'openai:text-embedding-3-small' "
                "WHERE embedding IS NOT NULL"
            )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS embedding_model")
    if _has_embedding("messages"):
        op.execute(
            "CREATE INDEX ix_messages_embedding ON messages "
            "USING hnsw (embedding vector_cosine_ops)"
        )
