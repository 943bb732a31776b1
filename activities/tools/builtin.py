"""The built-in tools: the two searches as the router's path runs them, and two
support-desk tools with side effects, create_ticket and escalate_to_human, which need a
person's approval by default and write under their call's idempotency key."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from activities.company_search import CompanySearch
from activities.sql.tool import DataTool
from activities.tools.registry import Tool, ToolContext, pydantic_tool
from activities.web_search import WebSearch
from shared.tool_calls import ToolCallOutput
from shared.tools import SearchCompaniesInput, SearchWebInput

FOREIGN_KEY_VIOLATION = "23503"


class SearchCompaniesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=500, description="what the companies do or make")
    location: str | None = Field(
        default=None, max_length=200, description="a city, state or country, if the user gave one"
    )


class SearchWebArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=500, description="the question to look up")


class QueryDataArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(
        min_length=1, max_length=2000, description="the user's question, as they asked it"
    )


class CreateTicketArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200, description="a one-line summary")
    description: str = Field(default="", max_length=4000, description="what happened, in detail")
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


class EscalateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000, description="why a person should take over")


# The call's ticket, opened by this statement or found from an earlier attempt of the call.
_OPEN_TICKET = text(
    """
    WITH opened AS (
        INSERT INTO tickets (idempotency_key, session_id, user_id, title, description, priority)
        VALUES (:key, :session_id, :user_id, :title, :description, :priority)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, title, priority
    )
    SELECT id, title, priority FROM opened
    UNION ALL
    SELECT id, title, priority FROM tickets WHERE idempotency_key = :key
    """
)
_FIND_TICKET = text("SELECT id, title, priority FROM tickets WHERE idempotency_key = :key")
_ESCALATE = text(
    """
    UPDATE sessions
    SET escalated_at = COALESCE(escalated_at, now()), escalation_reason = :reason,
        escalation_key = :key
    WHERE id = :session_id AND user_id = :user_id
    RETURNING escalated_at
    """
)


DATA_DESCRIPTION = (
    "Answer a question from the plant maintenance database (sites, equipment, maintenance "
    "schedules, work orders) with the numbers, a table, a CSV file and, for a trend or a "
    "comparison, a chart. Pass the user's question as they asked it, in any language."
)


def builtin_tools(
    *,
    companies: CompanySearch,
    web: WebSearch,
    engine: AsyncEngine,
    enabled: set[str],
    data: DataTool | None = None,
) -> list[Tool]:
    async def search_companies(args: SearchCompaniesArgs, ctx: ToolContext) -> ToolCallOutput:
        found = await companies.search_companies(
            SearchCompaniesInput(query=args.query, location=args.location)
        )
        data = found.model_dump(mode="json")
        if found.unavailable:
            return ToolCallOutput(ok=False, content=found.message, data=data)
        rows = [c.model_dump(exclude={"score"}, exclude_defaults=True) for c in found.companies]
        note = "SAMPLE DATA: fictional demo companies; say so. " if found.sample else ""
        content = note + json.dumps({"companies": rows}, ensure_ascii=False)
        return ToolCallOutput(content=content, data=data)

    async def search_web(args: SearchWebArgs, ctx: ToolContext) -> ToolCallOutput:
        found = await web.search_web(
            SearchWebInput(
                query=args.query,
                turn_id=ctx.turn_id,
                session_id=ctx.session_id,
                user_id=ctx.user_id,
                step=f"search:{ctx.idempotency_key}"[:64],
            )
        )
        data = found.model_dump(mode="json")
        if found.unavailable:
            return ToolCallOutput(ok=False, content=found.message, data=data)
        sources = "\n".join(f"[{c.index}] {c.title} {c.url}" for c in found.citations)
        content = f"{found.answer}\nSources (cite as [n]):\n{sources}"
        return ToolCallOutput(content=content, data=data)

    async def create_ticket(args: CreateTicketArgs, ctx: ToolContext) -> ToolCallOutput:
        # One statement, committed by itself: once it has run, the ticket exists whatever
        # happens to this worker, and a retried call (after a crash) finds its own row.
        params = {
            "key": ctx.idempotency_key,
            "session_id": ctx.session_id,
            "user_id": ctx.user_id,
            "title": args.title,
            "description": args.description,
            "priority": args.priority,
        }
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                row = (await conn.execute(_OPEN_TICKET, params)).first()
                if row is None:  # an attempt running beside this one committed it meanwhile
                    row = (await conn.execute(_FIND_TICKET, {"key": ctx.idempotency_key})).one()
        except IntegrityError as err:
            if getattr(err.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
                raise
            raise ApplicationError(
                "the session no longer exists", type="SessionMissing", non_retryable=True
            ) from None
        content = f"Ticket #{row.id} opened ({row.priority} priority): {row.title}"
        data = {"tool": "create_ticket", "ticket_id": row.id, "title": row.title}
        return ToolCallOutput(content=content, data=data)

    async def escalate_to_human(args: EscalateArgs, ctx: ToolContext) -> ToolCallOutput:
        params = {
            "key": ctx.idempotency_key,
            "reason": args.reason,
            "session_id": ctx.session_id,
            "user_id": ctx.user_id,
        }
        async with engine.begin() as conn:
            marked = (await conn.execute(_ESCALATE, params)).first()
        if marked is None:
            return ToolCallOutput(ok=False, content="the session no longer exists")
        content = (
            "The conversation is marked for a person to take over; tell the user someone "
            "from the team will follow up here."
        )
        return ToolCallOutput(content=content, data={"tool": "escalate_to_human"})

    async def query_data(args: QueryDataArgs, ctx: ToolContext) -> ToolCallOutput:
        assert data is not None
        return await data.answer(args.question, ctx)

    tools = [
        pydantic_tool(
            "search_companies",
            "Search the company directory for suppliers, vendors or partners by what they "
            "do, optionally near a location.",
            SearchCompaniesArgs,
            search_companies,
        ),
        pydantic_tool(
            "search_web",
            "Look up current facts on the web (news, prices, events, anything recent).",
            SearchWebArgs,
            search_web,
        ),
        pydantic_tool(
            "create_ticket",
            "Open a support ticket for the user's problem, for the support team to follow up.",
            CreateTicketArgs,
            create_ticket,
            side_effects=True,
            needs_approval=True,
            timeout_seconds=30,
            max_attempts=5,
        ),
        pydantic_tool(
            "escalate_to_human",
            "Hand the conversation to a person on the team, when the user asks for one or "
            "you cannot help.",
            EscalateArgs,
            escalate_to_human,
            side_effects=True,
            needs_approval=True,
            timeout_seconds=30,
            max_attempts=5,
        ),
    ]
    if data is not None:  # offered where a database is configured
        tools.append(
            pydantic_tool(
                "query_data",
                DATA_DESCRIPTION
                if data.sample
                else "Answer a question from the SQL database with the numbers, a table, a "
                "CSV file and, for a trend or a comparison, a chart. Pass the user's "
                "question as they asked it, in any language.",
                QueryDataArgs,
                query_data,
                # The SQL model's attempts and the queries' timeouts, with room to spare.
                timeout_seconds=120,
                max_attempts=2,
            )
        )
    return [t for t in tools if t.name in enabled]
