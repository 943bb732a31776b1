"""`chatbot ops`: operators' commands. `sessions` lists sessions through a Temporal
visibility query on the custom search attributes, `show` reads a session's live state
through its workflow's `state` query (or its stored turns when it is not running), and
`end` ends a session through the workflow's own path (running turns finish), and
`deployment` shows the worker builds (Worker Deployment Versions), which one is current
and how many session runs each still holds (its drainage). `feedback` lists the latest
ratings of replies with the counts up and down."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

from sqlalchemy.exc import DBAPIError
from temporalio.api.enums.v1 import VersioningBehavior as ApiVersioningBehavior
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from chatbot import feedback, repository
from shared import search_attributes as sa
from shared.breaker import policy_from, states
from shared.config import Settings
from shared.db.engine import engine_from_settings
from shared.models import SessionState, workflow_id
from shared.redis import REDIS_UNAVAILABLE, redis_from_settings
from shared.temporal_client import connect_temporal
from shared.usage import Limits, ledger_from_settings
from workers.versioning import describe as describe_deployment
from workflows.chat_session import ChatSessionWorkflow

STATUSES = ("active", "idle", "ended")
_SAFE_LITERAL = re.compile(r"^[^'\"\\]{1,256}$")


class OpsError(Exception):
    """The command cannot do what was asked; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ops_command", required=True, metavar="ACTION")
    ls = sub.add_parser("sessions", help="list sessions (newest first)")
    ls.add_argument("--user", help="only this user's sessions")
    ls.add_argument("--status", choices=STATUSES, help="only sessions in this status")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    show = sub.add_parser("show", help="a session's live state and last turns")
    show.add_argument("session")
    end = sub.add_parser("end", help="end a session gracefully (running turns finish)")
    end.add_argument("session")
    sub.add_parser(
        "deployment",
        help="worker builds: which is current, and how many sessions each still runs",
    )
    sub.add_parser("breakers", help="each provider's circuit breaker (shared through Redis)")
    usage = sub.add_parser("usage", help="tokens, cost and tool calls by user (or of one user)")
    usage.add_argument("--user", help="one user's usage, budgets and sessions")
    usage.add_argument("--limit", type=int, default=50, help="at most this many users")
    budget = sub.add_parser(
        "budget", help="show or set one user's budgets (unset fields: the BUDGET_* default)"
    )
    budget.add_argument("user")
    for name in ("tokens-per-day", "tokens-per-month"):
        budget.add_argument(f"--{name}", type=_non_negative(int), metavar="N")
    for name in ("cost-per-day", "cost-per-month"):
        budget.add_argument(f"--{name}", type=_non_negative(float), metavar="USD")
    budget.add_argument("--default", action="store_true", help="back to the BUDGET_* defaults")
    ratings = sub.add_parser(
        "feedback", help="the latest ratings of replies (newest first), with the counts"
    )
    ratings.add_argument("--user", help="only this user's ratings")
    ratings.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number < 0:
            raise argparse.ArgumentTypeError("a budget cannot be negative")
        return number

    return parse


def _limit(value: float | None, unit: str) -> str:
    if value is None:
        return "no limit"
    return f"{value:,.0f} tokens" if unit == "tokens" else f"${value:.4f}"


async def show_breakers(settings: Settings) -> str:
    try:
        redis = redis_from_settings(settings)
    except ValueError as err:  # no REDIS_URL
        raise OpsError(str(err)) from None
    try:
        found = await states(redis, settings)
    except REDIS_UNAVAILABLE as err:
        raise OpsError(f"cannot reach Redis: {err}") from None
    finally:
        await redis.aclose()
    p = policy_from(settings)
    lines = [f"{'provider':<12} {'state':<10} detail"]
    for b in found:
        detail = (
            f"failing fast for {b.retry_after:.0f} s more"
            if b.state == "open"
            else "the next call probes the provider"
            if b.state == "half_open"
            else f"{b.failures} failures in the last {p.window_seconds:g} s"
        )
        lines.append(f"{b.provider:<12} {b.state:<10} {detail}")
    lines.append(
        f"(opens after {p.failures} failures in {p.window_seconds:g} s, for "
        f"{p.open_seconds:g} s; task queue {settings.temporal_task_queue})"
        if p.failures
        else "(breakers are off: BREAKER_FAILURES=0)"
    )
    return "\n".join(lines)


async def usage_report(settings: Settings, user: str | None, limit: int) -> str:
    engine = engine_from_settings(settings)
    ledger = ledger_from_settings(engine, settings)
    try:
        if user is None:
            rows = await ledger.top_users(limit)
            if not rows:
                return "no usage recorded this month"
            lines = [
                f"{'user':<24} {'tokens today':>12} {'cost today':>11} "
                f"{'tokens month':>12} {'cost month':>11} {'turns':>6} {'tools':>6}"
            ]
            for r in rows:
                lines.append(
                    f"{r['user_id'][:24]:<24} {r['day_tokens']:>12,} "
                    f"${float(r['day_cost']):>10.4f} "
                    f"{r['month_tokens']:>12,} ${float(r['month_cost']):>10.4f} "
                    f"{r['month_turns']:>6} {r['month_tools']:>6}"
                )
            lines.append("(UTC day and month; cost estimated from MODEL_PRICES and TOOL_PRICES)")
            return "\n".join(lines)
        report = await ledger.report(user)
    finally:
        await engine.dispose()
    lines = [f"user {user}"]
    for p in (report.day, report.month):
        lines.append(
            f"{p.period:<6} {p.tokens:>10,} tokens of {_limit(p.limit_tokens, 'tokens')}, "
            f"${p.cost_usd:.4f} of {_limit(p.limit_cost_usd, 'cost')}, {p.tool_calls} tool "
            f"calls, {p.reserved_tokens:,} reserved; resets {_when(p.resets_at)}"
        )
    for sess in report.sessions:
        lines.append(
            f"  {sess.session_id:<36} {sess.turns:>5} turns {sess.tokens:>10,} tokens "
            f"${sess.cost_usd:.4f}"
        )
    return "\n".join(lines)


async def set_budget(settings: Settings, args: argparse.Namespace) -> str:
    engine = engine_from_settings(settings)
    ledger = ledger_from_settings(engine, settings)
    fields = ("tokens_per_day", "tokens_per_month", "cost_per_day", "cost_per_month")
    given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    try:
        if args.default:
            await ledger.clear_limits(args.user)
        elif given:
            before = await ledger.own_limits(args.user) or Limits()
            await ledger.set_limits(args.user, before.model_copy(update=given))
        own = await ledger.own_limits(args.user)
        limits = await ledger.limits(args.user)
    finally:
        await engine.dispose()
    source = "own budgets" if own is not None else "the BUDGET_* defaults"
    return (
        f"user {args.user} ({source}): "
        f"{_limit(limits.tokens_per_day, 'tokens')} a day, "
        f"{_limit(limits.tokens_per_month, 'tokens')} a month, "
        f"{_limit(limits.cost_per_day, 'cost')} a day, "
        f"{_limit(limits.cost_per_month, 'cost')} a month"
    )


REASON_CHARS = 60  # of a rating's reason, in the table


def _clip(value: str | None, chars: int) -> str:
    flat = " ".join((value or "").split())
    return flat if len(flat) <= chars else flat[: chars - 1].rstrip() + "…"


async def feedback_report(settings: Settings, user: str | None, limit: int) -> str:
    if limit < 1:
        raise OpsError("--limit must be at least 1")
    try:
        engine = engine_from_settings(settings)
    except ValueError as err:  # no DATABASE_URL
        raise OpsError(str(err)) from None
    try:
        rows = await feedback.latest(engine, user_id=user, limit=limit)
        total = await feedback.counts(engine, user_id=user)
    except (OSError, DBAPIError) as err:
        raise OpsError(f"cannot read the ratings from Postgres: {err}") from None
    finally:
        await engine.dispose()
    scope = f" by {user}" if user is not None else ""
    if not rows:
        return f"no ratings{scope} yet"
    table = [("WHEN", "USER", "SESSION", "TURN", "RATING", "REASON")]
    table += [
        (
            _when(r["updated_at"]),
            r["user_id"],
            r["session_id"],
            r["turn_id"],
            r["rating"],
            _clip(r["reason"], REASON_CHARS) or "-",
        )
        for r in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.append(f"ratings: {total['up']} up, {total['down']} down{scope} (UTC times)")
    return "\n".join(lines)


def visibility_query(user: str | None, status: str | None) -> str:
    clauses = [f"WorkflowType = '{ChatSessionWorkflow.__name__}'"]
    if user is not None:
        if not _SAFE_LITERAL.match(user):
            raise OpsError("--user must be 1-256 characters without quotes or backslashes")
        clauses.append(f"{sa.USER_ID.name} = '{user}'")
    if status is not None:
        clauses.append(f"{sa.STATUS.name} = '{status}'")
    return " AND ".join(clauses)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


async def list_sessions(client: Client, user: str | None, status: str | None, limit: int) -> str:
    if limit < 1:
        raise OpsError("--limit must be at least 1")
    rows = [("SESSION", "USER", "STATUS", "TURNS", "LAST INTENT", "LAST ACTIVITY", "WORKFLOW")]
    seen: set[str] = set()
    # Every run of a session is listed (continue-as-new makes several); keep the newest.
    async for wf in client.list_workflows(visibility_query(user, status)):
        if wf.id in seen:
            continue
        seen.add(wf.id)
        attrs = wf.typed_search_attributes
        rows.append(
            (
                wf.id.removeprefix("chat-"),
                attrs.get(sa.USER_ID) or "-",
                attrs.get(sa.STATUS) or "-",
                str(attrs.get(sa.TURN_COUNT) or 0),
                attrs.get(sa.LAST_INTENT) or "-",
                _when(attrs.get(sa.LAST_ACTIVITY)),
                wf.status.name.title() if wf.status else "-",
            )
        )
        if len(seen) >= limit:
            break
    if len(rows) == 1:
        return "no sessions match"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


async def _describe(client: Client, session_id: str) -> WorkflowExecutionDescription:
    try:
        return await client.get_workflow_handle(workflow_id(session_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            wid = workflow_id(session_id)
            raise OpsError(f"no session {session_id!r} (no workflow {wid})") from None
        raise


async def show_session(client: Client, settings: Settings, session_id: str) -> str:
    desc = await _describe(client, session_id)
    attrs = desc.typed_search_attributes
    run_status = desc.status.name.title() if desc.status else "-"
    intent = attrs.get(sa.LAST_INTENT) or "-"
    lines = [
        f"session   {session_id}",
        f"user      {attrs.get(sa.USER_ID) or '-'}",
        f"status    {attrs.get(sa.STATUS) or '-'}; workflow {run_status}",
        f"turns     {attrs.get(sa.TURN_COUNT) or 0}, last intent {intent}",
        f"workflow  {desc.id} run {desc.run_id}",
    ]
    versioning = desc.raw_description.workflow_execution_info.versioning_info
    if versioning.deployment_version.build_id:
        pinned = versioning.behavior == ApiVersioningBehavior.VERSIONING_BEHAVIOR_PINNED
        behavior = "pinned" if pinned else "auto-upgrade"
        lines.append(f"build     {versioning.deployment_version.build_id} ({behavior})")
    if desc.status == WorkflowExecutionStatus.RUNNING:
        handle = client.get_workflow_handle(desc.id)
        state: SessionState = await handle.query(ChatSessionWorkflow.state)
        lines.append(f"running   turn {state.running_turn_id or '-'}, {state.queued_turns} queued")
        if state.summary:
            lines.append(f"summary   {state.summary}")
        turns: list[tuple[str, str]] = [(m.role, m.content) for m in state.recent]
    elif settings.database_url is not None:
        engine = engine_from_settings(settings)
        try:
            rows, _ = await repository.list_messages(
                engine, session_id=session_id, limit=10, before=None
            )
        finally:
            await engine.dispose()
        turns = [(str(r["role"]), str(r["content"])) for r in rows]
    else:
        turns = []
        lines.append("(not running; set DATABASE_URL to see its stored turns)")
    if turns:
        lines.append("last turns:")
    elif not attrs.get(sa.TURN_COUNT):
        lines.append("no turns yet")
    lines += [f"  {role:>9}: {' '.join(text.split())[:200]}" for role, text in turns]
    return "\n".join(lines)


async def end_session(client: Client, session_id: str) -> str:
    desc = await _describe(client, session_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        status = desc.status.name.title() if desc.status else "unknown"
        raise OpsError(f"session {session_id!r} is not running (its workflow is {status})")
    handle = client.get_workflow_handle(desc.id)
    await handle.signal(ChatSessionWorkflow.end_session)
    await asyncio.wait_for(handle.result(), 60)
    return f"session {session_id!r} ended: its running turns finished, new messages are refused"


async def _run(args: argparse.Namespace, settings: Settings) -> str:
    if args.ops_command == "usage":  # the ledger, in Postgres: no Temporal needed
        return await usage_report(settings, args.user, args.limit)
    if args.ops_command == "budget":
        return await set_budget(settings, args)
    if args.ops_command == "breakers":
        return await show_breakers(settings)
    if args.ops_command == "feedback":
        return await feedback_report(settings, args.user, args.limit)
    client = await connect_temporal(settings)
    if args.ops_command == "sessions":
        return await list_sessions(client, args.user, args.status, args.limit)
    if args.ops_command == "show":
        return await show_session(client, settings, args.session)
    if args.ops_command == "deployment":
        return await show_deployment(client, settings)
    return await end_session(client, args.session)


async def show_deployment(client: Client, settings: Settings) -> str:
    view = await describe_deployment(client, settings)
    if view is None:
        return (
            f"deployment {settings.worker_deployment_name}: no worker of it has polled yet "
            "(start one: `chatbot worker`)"
        )
    lines = [
        f"deployment {view.name}",
        f"current    {view.current_build or '- (none: no session can start)'}",
    ]
    if view.ramping_build:
        lines.append(f"ramping    {view.ramping_build} at {view.ramping_percent:g} %")
    lines.append(f"{'build':<28} {'status':<9} {'sessions':>8}  created")
    for v in view.versions:
        status = v.drainage if v.status == "draining" and v.drainage else v.status
        created = _when(v.created)
        lines.append(f"{v.build_id:<28} {status:<9} {v.running_sessions:>8}  {created}")
    lines.append(
        "(sessions: runs still open on that build, from visibility, a few seconds behind; "
        "a build with none left and not current is drained and its workers can stop)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        out = asyncio.run(_run(args, settings))
    except OpsError as err:
        return _exit(f"error: {err}\n", 1)
    except RuntimeError as err:  # temporalio raises RuntimeError when it cannot connect
        return _exit(f"error: cannot reach Temporal at {settings.temporal_address}: {err}\n", 1)
    return _exit(out + "\n", 0)


def _exit(text: str, code: int) -> NoReturn:
    """Write, flush and leave without interpreter teardown: the Temporal client's native
    threads can abort a finalizing interpreter (temporalio/sdk-python#300), turning a
    finished command's exit code into SIGABRT."""
    (sys.stdout if code == 0 else sys.stderr).write(text)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
