"""The `query_data` tool: the question in, an answer's numbers out. The chat model asks
with the user's question; a model call here writes the SQL from the described schema
(English names, whatever the question's language), the checker and the database judge
it, and a failure goes back to that model with the error, up to MAX_SQL_RETRIES more
times. The result's first HEAD_ROWS rows go to the chat model as a table; the whole
result becomes a CSV artifact and, when the question asks for a trend or a comparison, a
chart, both made side by side."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
import time
from datetime import date
from typing import Any, Literal

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.embeddings import openai_failed
from activities.llm import provider_error
from activities.sql.catalog import Catalog, read_catalog
from activities.sql.chart import ChartRefused, ChartSpec, charts_available, render_chart
from activities.sql.checker import check_sql
from activities.sql.runner import QueryResult, SqlFailed, run_query
from activities.sql.sample import SCHEMA as SAMPLE_SCHEMA
from activities.tools.registry import ToolContext
from shared.artifacts import ArtifactRef, ArtifactStore, ArtifactTooLarge
from shared.breaker import Breaker, ProviderUnavailable, guarded, unavailable_error
from shared.config import Settings
from shared.pii import PiiRedactor, Redaction
from shared.tool_calls import ToolCallOutput
from shared.usage import Step, UsageLedger, reported_usage

log = logging.getLogger(__name__)

CATALOG_TTL_SECONDS = 600.0  # the schema is read again this often (a table added shows up)

SQL_SYSTEM = """\
You write one PostgreSQL query that answers the user's question from the database below.
Rules: a single SELECT statement (WITH is fine); only the tables listed; no writes; the
table and column names exactly as listed (they are English, whatever language the
question is in); today is {today}. When the question asks for a trend over time or a
comparison between groups, also choose a chart: "line" for a trend, "bar" for a
comparison, with the result columns for x and y; otherwise "none".
Answer with JSON only: {{"sql": "...", "chart": "none|bar|line", "x": "", "y": "", \
"title": ""}}.

Database:
{schema}"""
SQL_SCHEMA: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {
        "name": "sql_query",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "sql": {"type": "string"},
                "chart": {"type": "string", "enum": ["none", "bar", "line"]},
                "x": {"type": "string"},
                "y": {"type": "string"},
                "title": {"type": "string"},
            },
            "required": ["sql", "chart", "x", "y", "title"],
            "additionalProperties": False,
        },
    },
}
_FENCED = re.compile(r"```(?:sql)?\s*(.+?)```", re.DOTALL | re.IGNORECASE)


class SqlDraft(BaseModel):
    sql: str = Field(min_length=1, max_length=20_000)
    chart: Literal["none", "bar", "line"] = "none"
    x: str = ""
    y: str = ""
    title: str = Field("", max_length=200)


def parse_draft(content: str) -> SqlDraft:
    """The model's JSON; a bare or fenced query is taken too (a model that ignored the
    format). Raises ValueError."""
    try:
        return SqlDraft.model_validate(json.loads(content))
    except (ValueError, ValidationError):
        pass
    fenced = _FENCED.search(content)
    query = (fenced.group(1) if fenced else content).strip()
    if re.match(r"(?is)^\s*(select|with)\b", query):
        return SqlDraft(sql=query)
    raise ValueError("the reply was neither the JSON asked for nor a query")


def as_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table, for the chat model to quote."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def as_csv(columns: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode()


class DataTool:
    def __init__(
        self,
        client: AsyncOpenAI,
        engine: AsyncEngine,
        artifacts: ArtifactStore,
        settings: Settings,
        *,
        breaker: Breaker | None = None,
        ledger: UsageLedger | None = None,
    ) -> None:
        self._client = client
        self._engine = engine  # as the SELECT-only role
        self._artifacts = artifacts
        self._settings = settings
        self._breaker = breaker
        self._ledger = ledger
        self._pii: PiiRedactor | None = settings.pii_in_prompts
        self._schemas = tuple(settings.data_schemas)
        self._catalog: tuple[float, Catalog] | None = None

    @property
    def sample(self) -> bool:
        """Reading the sample maintenance data (`chatbot dev`'s default)."""
        return SAMPLE_SCHEMA in self._schemas

    async def catalog(self) -> Catalog:
        now = time.monotonic()
        if self._catalog is None or now - self._catalog[0] > CATALOG_TTL_SECONDS:
            self._catalog = (now, await read_catalog(self._engine, self._schemas))
        return self._catalog[1]

    async def answer(self, question: str, ctx: ToolContext) -> ToolCallOutput:
        s = self._settings
        catalog = await self.catalog()
        if not catalog.tables:
            return ToolCallOutput(
                ok=False,
                content=f"There are no tables to read in {', '.join(self._schemas)}.",
                data={"tool": "query_data", "error": "no tables"},
            )
        redaction = Redaction()
        asked = self._pii.redact(question, redaction) if self._pii else question
        system = SQL_SYSTEM.format(today=date.today().isoformat(), schema=catalog.describe())
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": asked},
        ]
        attempts: list[dict[str, Any]] = []
        started = time.perf_counter()
        result: QueryResult | None = None
        draft: SqlDraft | None = None
        for attempt in range(1, s.max_sql_retries + 2):
            content = await self._ask(messages, ctx, attempt)
            try:
                draft = parse_draft(content)
                checked = check_sql(
                    redaction.restore(draft.sql),
                    schemas=self._schemas,
                    row_limit=s.sql_max_rows,
                    known=catalog.known,
                )
                result = await run_query(
                    self._engine,
                    checked,
                    schemas=self._schemas,
                    row_limit=s.sql_max_rows,
                    timeout_seconds=s.sql_timeout_seconds,
                )
                attempts.append({"sql": checked.original, "ok": True, "ms": round(result.ms, 1)})
                break
            except (ValueError, SqlFailed) as err:  # SqlRejected is a ValueError
                stage = "rejected" if isinstance(err, ValueError) else "failed"
                attempts.append({"sql": draft.sql if draft else content[:500], "error": str(err)})
                log.info("query %s (attempt %d): %s", stage, attempt, err)
                messages += [
                    {"role": "assistant", "content": content},
                    {
                        "role": "user",
                        "content": f"That query {stage}: {err}. Write a corrected query.",
                    },
                ]
        sql_ms = (time.perf_counter() - started) * 1000
        timings = {"sql_ms": round(sql_ms, 1), "sql_attempts": len(attempts)}
        if result is None or draft is None:
            last = attempts[-1].get("error", "") if attempts else ""
            return ToolCallOutput(
                ok=False,
                content=(
                    f"No query worked in {len(attempts)} attempts; the last error: {last}. "
                    "Tell the user the data could not be read for this question."
                ),
                data={"tool": "query_data", "attempts": attempts, **timings},
            )
        refs, chart_ms, chart_note = await self._artifacts_of(result, draft, ctx)
        head = result.rows[: s.head_rows]
        sample = self.sample
        # The first line is the call's summary on the page and in the CLI.
        lines = [
            f"Rows: {len(result.rows)}{' (more were cut at the limit)' if result.truncated else ''}"
            + (f"; the first {len(head)} are below." if len(head) < len(result.rows) else "."),
            "SAMPLE DATA (fictional, generated for demos); say so." if sample else "",
            f"SQL: {attempts[-1]['sql']}",
            as_table(result.columns, head),
            "The full result is attached as a CSV file" + (" with a chart." if chart_ms else "."),
            chart_note,
            "Answer in the language of the user's question.",
        ]
        data = {
            "tool": "query_data",
            "sql": attempts[-1]["sql"],
            "columns": result.columns,
            "rows": head,
            "row_count": len(result.rows),
            "truncated": result.truncated,
            "sample": sample,
            "attempts": attempts,
            "artifacts": [r.model_dump(mode="json") for r in refs],
            **timings,
            **({"chart_ms": round(chart_ms, 1)} if chart_ms else {}),
        }
        return ToolCallOutput(content="\n".join(x for x in lines if x), data=data)

    async def _ask(
        self, messages: list[ChatCompletionMessageParam], ctx: ToolContext, attempt: int
    ) -> str:
        model = self._settings.openai_chat_model
        try:
            async with guarded(self._breaker, openai_failed):
                completion = await self._client.chat.completions.create(
                    model=model,
                    messages=messages,
                    response_format=SQL_SCHEMA,
                    temperature=0,
                    max_tokens=800,
                )
        except openai.APIError as err:
            raise provider_error(err) from err
        except ProviderUnavailable as err:
            raise unavailable_error(err) from None
        if self._ledger is not None:
            step = Step(
                ctx.turn_id,
                f"sql:{ctx.idempotency_key}:{attempt}"[:64],
                ctx.user_id,
                ctx.session_id,
                model,
            )
            await self._ledger.record(step, reported_usage(completion.usage))
        return (completion.choices[0].message.content or "") if completion.choices else ""

    async def _artifacts_of(
        self, result: QueryResult, draft: SqlDraft, ctx: ToolContext
    ) -> tuple[list[ArtifactRef], float, str]:
        """The CSV and (asked for, and drawable) the chart, made side by side and stored:
        their references, the chart's milliseconds (0: none) and a note on a chart not
        drawn."""
        note = ""
        spec = None
        if draft.chart != "none":
            if not charts_available():
                note = "No chart: drawing one needs the `data` extra (matplotlib)."
            else:
                spec = ChartSpec(kind=draft.chart, x=draft.x, y=draft.y, title=draft.title)

        async def chart() -> tuple[bytes | None, float, str]:
            if spec is None:
                return None, 0.0, note
            began = time.perf_counter()
            try:
                png = await asyncio.to_thread(render_chart, result.columns, result.rows, spec)
            except ChartRefused as err:
                return None, 0.0, f"No chart: {err}."
            return png, (time.perf_counter() - began) * 1000, ""

        table = asyncio.to_thread(as_csv, result.columns, result.rows)
        csv_bytes, (png, chart_ms, note) = await asyncio.gather(table, chart())
        files = [("result.csv", "text/csv", csv_bytes)]
        if png is not None:
            files.append(("chart.png", "image/png", png))
        refs = []
        for name, media_type, content in files:
            try:
                refs.append(
                    await self._artifacts.put(
                        key=ctx.idempotency_key,
                        session_id=ctx.session_id,
                        user_id=ctx.user_id,
                        turn_id=ctx.turn_id,
                        name=name,
                        media_type=media_type,
                        data=content,
                    )
                )
            except ArtifactTooLarge as err:
                note = f"{note} Not attached: {err}.".strip()
        return refs, chart_ms, note
