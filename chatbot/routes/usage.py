"""The caller's usage and budgets: today, this month, and this month by session."""

from __future__ import annotations

from fastapi import APIRouter

from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.schemas import error_responses
from shared.usage import UsageReport

router = APIRouter(tags=["usage"], dependencies=[LogIds])


@router.get("/me/usage", responses=error_responses(401, 503))
async def my_usage(user: CurrentUser, res: ResourcesDep) -> UsageReport:
    """Tokens, estimated cost (USD) and tool calls the caller's turns used, against their
    budgets (`limit_*` null: no limit), with when each period resets (UTC). `reserved_tokens`
    is what running model calls hold until they settle."""
    return await res.ledger.report(user)
