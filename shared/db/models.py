"""Table definitions, for queries. The schema itself is owned by the Alembic migrations;
`metadata.create_all` is never used outside tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EMBEDDING_DIMENSIONS = 384  # MiniLM-sized; OpenAI's text-embedding-3 models accept `dimensions`.

SESSION_STATUSES = ("active", "idle", "ended")
MESSAGE_ROLES = ("user", "assistant")
MESSAGE_STATUSES = ("complete", "cancelled", "failed")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True)}


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(f"status IN {SESSION_STATUSES}", name="status"),
        Index("ix_sessions_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(200), server_default="")
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    summary: Mapped[str] = mapped_column(Text, server_default="")
    turn_count: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_activity_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set by the escalate_to_human tool: the session waits for a person.
    escalated_at: Mapped[datetime | None] = mapped_column()
    escalation_reason: Mapped[str | None] = mapped_column(Text)
    escalation_key: Mapped[str | None] = mapped_column(String(200))


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(f"role IN {MESSAGE_ROLES}", name="role"),
        CheckConstraint(f"status IN {MESSAGE_STATUSES}", name="status"),
        # The idempotency key of a POST: one user message per client_message_id per session.
        UniqueConstraint("session_id", "client_message_id", name="uq_messages_client_message"),
        # A retried persist_turn activity writes each role of a turn at most once.
        UniqueConstraint("turn_id", "role", name="uq_messages_turn_role"),
        Index("ix_messages_session_seq", "session_id", "seq"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    turn_id: Mapped[UUID]
    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    client_message_id: Mapped[str | None] = mapped_column(String(128))
    intent: Mapped[str | None] = mapped_column(String(32))
    tool_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="complete")
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    latency_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


COMPANY_SEARCH_DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(capabilities, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(industry, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(description, '')), 'C') || "
    "setweight(to_tsvector('english', coalesce(location, '')), 'D')"
)


class CompanyRow(Base):
    """A company to search. The `embedding vector(384)` column exists only where the
    pgvector extension is available; it is queried with SQL, so it is not mapped here."""

    __tablename__ = "companies"
    __table_args__ = (
        UniqueConstraint("name", "location", name="uq_companies_name_location"),
        Index("ix_companies_search", "search", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, server_default="")
    industry: Mapped[str] = mapped_column(String(200), server_default="")
    location: Mapped[str] = mapped_column(String(200), server_default="")
    contact: Mapped[str] = mapped_column(String(300), server_default="")
    capabilities: Mapped[str] = mapped_column(Text, server_default="")
    source: Mapped[str] = mapped_column(String(32), server_default="import")
    search: Mapped[str] = mapped_column(TSVECTOR, Computed(COMPANY_SEARCH_DOCUMENT, persisted=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TicketRow(Base):
    """A support ticket the create_ticket tool opened, once per call (idempotency_key)."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    priority: Mapped[str] = mapped_column(String(16), server_default="normal")
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


FEEDBACK_RATINGS = ("up", "down")
FEEDBACK_REASON_CHARS = 1000


class FeedbackRow(Base):
    """A user's rating of an assistant turn: one per turn, a second one replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(f"rating IN {FEEDBACK_RATINGS}", name="rating"),
        CheckConstraint(f"char_length(reason) <= {FEEDBACK_REASON_CHARS}", name="reason_length"),
    )

    turn_id: Mapped[UUID] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(256))
    rating: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
