"""The data tool's layers on real Postgres with the sample schema: what the checker stops,
what the SELECT-only role and the read-only transaction stop when a query gets past it,
what the statement timeout and the row limit stop, and what the catalog tells the model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.intent import IntentActivities, linear
from activities.sql.catalog import read_catalog
from activities.sql.checker import CheckedSql, SqlRejected, check_sql
from activities.sql.questions import SAMPLE_TERMS, asks_data, terms_of
from activities.sql.runner import SqlFailed, run_query
from activities.sql.sample import READER_ROLE, SCHEMA, generate, load_sample, reader_url
from activities.sql.tool import DataTool
from shared.artifacts import ArtifactStore
from shared.config import load_settings
from shared.db.engine import create_engine
from shared.models import DetectIntentInput
from tests.support import free_port

SCHEMAS = (SCHEMA,)


@pytest.fixture
async def owner(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=2, max_overflow=0)
    await load_sample(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def reader(owner: AsyncEngine, migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(reader_url(migrated_database_url), pool_size=2, max_overflow=0)
    yield engine
    await engine.dispose()


async def run(reader: AsyncEngine, sql: str, *, limit: int = 100, seconds: float = 5) -> list:
    checked = check_sql(sql, schemas=SCHEMAS, row_limit=limit)
    result = await run_query(
        reader, checked, schemas=SCHEMAS, row_limit=limit, timeout_seconds=seconds
    )
    return result.rows


def test_the_sample_is_the_same_for_the_same_day() -> None:
    from datetime import date

    one, two = generate(date(2026, 12, 7)), generate(date(2026, 12, 7))
    assert one == two
    assert {k: len(v) for k, v in one.items()}["work_orders"] == 3000
    assert len(one["equipment"]) == 600 and len(one["sites"]) == 8


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM work_orders", "only a SELECT"),
        ("UPDATE equipment SET status = 'down'", "only a SELECT"),
        ("SELECT 1; DROP TABLE sample_maintenance.sites", "exactly one statement"),
        ("SELECT count(*) FROM equipment; SELECT 2", "exactly one statement"),
        ("SELECT * FROM public.sessions", "outside the data"),
        ("SELECT * FROM pg_catalog.pg_authid", "outside the data"),
        ("SELECT * INTO stolen FROM equipment", "SELECT INTO"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT set_config('role', 'postgres', false)", "set_config"),
        ("COPY equipment TO '/tmp/x.csv'", "only a SELECT"),
        ("SELECT * FROM equipment FOR UPDATE", "row locks"),
        ("WITH gone AS (DELETE FROM sites RETURNING *) SELECT * FROM gone", "only reading"),
        ("SELECT name FROM equipment\x00", "NUL"),
        ("this is not sql", "only a SELECT"),
        ("SELECT (1", "does not parse"),
    ],
)
def test_the_checker_stops(sql: str, reason: str) -> None:
    with pytest.raises(SqlRejected, match=reason):
        check_sql(sql, schemas=SCHEMAS, row_limit=100)


async def test_an_unqualified_catalog_name_is_not_a_table_of_the_schema(
    reader: AsyncEngine,
) -> None:
    catalog = await read_catalog(reader, SCHEMAS)
    with pytest.raises(SqlRejected, match="no table pg_roles"):
        check_sql("SELECT * FROM pg_roles", schemas=SCHEMAS, row_limit=10, known=catalog.known)
    check_sql("SELECT * FROM equipment", schemas=SCHEMAS, row_limit=10, known=catalog.known)


async def test_past_the_checker_the_role_and_the_transaction_stop_it(
    reader: AsyncEngine,
) -> None:
    """Queries run as written (as if the checker had a hole): the role has no right on the
    service's own tables, and the transaction is read-only."""

    async def unchecked(sql: str) -> None:
        await run_query(
            reader, CheckedSql(sql, sql, ()), schemas=SCHEMAS, row_limit=10, timeout_seconds=5
        )

    with pytest.raises(SqlFailed, match="permission denied") as denied:
        await unchecked("SELECT * FROM public.sessions")
    assert denied.value.code == "42501"
    with pytest.raises(SqlFailed, match="read-only transaction") as read_only:
        await unchecked("DELETE FROM sample_maintenance.work_orders")
    assert read_only.value.code == "25006"
    with pytest.raises(SqlFailed, match="permission denied"):
        await unchecked("SELECT pg_read_file('/etc/passwd')")


async def test_the_timeout_stops_a_slow_query_and_the_limit_a_huge_one(
    reader: AsyncEngine,
) -> None:
    with pytest.raises(SqlFailed, match=r"past its 0\.5 s limit") as slow:
        await run(reader, "SELECT pg_sleep(60)", seconds=0.5)
    assert slow.value.code == "57014"
    checked = check_sql("SELECT * FROM generate_series(1, 10000000)", schemas=SCHEMAS, row_limit=50)
    huge = await run_query(reader, checked, schemas=SCHEMAS, row_limit=50, timeout_seconds=10)
    assert len(huge.rows) == 50 and huge.truncated


async def test_a_question_gets_the_number_the_data_holds(
    owner: AsyncEngine, reader: AsyncEngine
) -> None:
    sql = (
        "SELECT count(DISTINCT e.id) FROM equipment e JOIN maintenance_schedules m "
        "ON m.equipment_id = e.id WHERE m.kind = 'preventive' AND e.status <> 'retired' "
        "AND m.next_due < date_trunc('month', current_date) + interval '1 month'"
    )
    (row,) = await run(reader, sql)
    async with owner.connect() as conn:  # the same, as the owner, written another way
        expected = await conn.scalar(
            text(
                f"SELECT count(*) FROM {SCHEMA}.equipment e WHERE e.status != 'retired' AND "
                f"EXISTS (SELECT 1 FROM {SCHEMA}.maintenance_schedules m WHERE "
                "m.equipment_id = e.id AND m.kind = 'preventive' AND "
                "m.next_due < date_trunc('month', current_date) + interval '1 month')"
            )
        )
    assert row == [expected] and 0 < expected < 600


async def test_the_catalog_describes_tables_columns_keys_and_values(reader: AsyncEngine) -> None:
    catalog = await read_catalog(reader, SCHEMAS)
    described = catalog.describe()
    assert "SAMPLE DATA" in described
    assert f"Table {SCHEMA}.work_orders (3000 rows)" in described
    assert "equipment_id integer -> equipment.id" in described
    assert "status text: in_service, down (out of order) or retired" in described
    assert "(values: 'done', 'cancelled'" not in described  # sorted, all of them
    assert "(values: 'cancelled', 'done', 'in_progress', 'open')" in described
    assert READER_ROLE not in described


@pytest.mark.parametrize(
    ("question", "about_data"),
    [
        ("How many machines need preventive maintenance this month?", True),
        ("¿Cuántas máquinas necesitan mantenimiento preventivo este mes?", True),
        ("cuantas maquinas necesitan mantenimiento", True),  # typed without accents
        ("Total cost of work orders per site", True),
        ("Which machines have open work orders?", True),
        ("lista de equipos por planta", True),
        ("How many maintenance schedules are overdue?", True),  # a table's own name
        ("What is preventive maintenance?", False),  # no quantity asked for
        ("How many legs does a spider have?", False),  # nothing the data holds
        ("How much does a CNC machine cost?", False),
        ("Which suppliers do machine maintenance in Ohio?", False),
        ("How many companies do PCB assembly in Texas?", False),
    ],
)
async def test_a_question_about_what_the_data_holds_is_recognised(
    reader: AsyncEngine, question: str, about_data: bool
) -> None:
    terms = terms_of(await read_catalog(reader, SCHEMAS), sample=True)
    assert asks_data(question, terms) is about_data


def test_no_routing_example_or_eval_query_counts_as_a_data_question() -> None:
    """`chatbot dev` flags data questions on every turn: the questions the router is
    trained and scored on (companies, the web, chat) must all pass untouched."""
    texts = [
        e.text for e in linear.load_examples() + linear.load_examples(linear.HERE / "eval.jsonl")
    ]
    assert len(texts) > 2000
    terms = set(SAMPLE_TERMS) | {"work orders", "equipment", "sites", "maintenance schedules"}
    assert [t for t in texts if asks_data(t, terms)] == []


async def test_intent_detection_flags_a_data_question_and_goes_on_when_the_data_is_away(
    reader: AsyncEngine, migrated_database_url: str
) -> None:
    """The flag comes from the catalog; with the data database down the turn is routed as
    any other (logged), not failed."""
    settings = load_settings(data_schemas=[SCHEMA], openai_api_key=None)
    client = AsyncOpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    dead = create_engine(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1, max_overflow=0
    )
    question = DetectIntentInput(text="How many machines need preventive maintenance?")
    files = ArtifactStore(reader, max_bytes=1000)  # unused: detection runs no query
    try:
        up = IntentActivities(unanswerable_data=DataTool(client, reader, files, settings))
        assert (await up.detect_intent(question)).data_question is True
        down = IntentActivities(unanswerable_data=DataTool(client, dead, files, settings))
        routed = await down.detect_intent(question)
        assert routed.data_question is False and routed.intent == "chat"
    finally:
        await dead.dispose()
        await client.close()
