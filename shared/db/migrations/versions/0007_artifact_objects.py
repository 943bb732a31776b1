"""artifacts: bytes in an S3-compatible bucket (ARTIFACT_STORE=s3)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

A row keeps who owns the file either way; its bytes are in `data` (Postgres) or in the
bucket under `object_key`, one of the two.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("artifacts", sa.Column("object_key", sa.String(512), nullable=True))
    op.alter_column("artifacts", "data", nullable=True)
    op.create_check_constraint(
        "ck_artifacts_bytes_somewhere",
        "artifacts",
        "(data IS NULL) <> (object_key IS NULL)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM artifacts WHERE data IS NULL")  # their bytes are in the bucket
    op.drop_constraint("ck_artifacts_bytes_somewhere", "artifacts", type_="check")
    op.alter_column("artifacts", "data", nullable=False)
    op.drop_column("artifacts", "object_key")
