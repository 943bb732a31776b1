from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from chatbot.embedded.process import ManagedProcess, port_open
from shared.db import migrate
from shared.db.engine import connect_target, create_engine
from tests.support import free_port


def test_urls_people_paste_are_normalised_for_asyncpg() -> None:
    t = connect_target(
        "postgres://u:p@db.example.com:5433/chat?sslmode=require&channel_binding=require"
    )
    assert t.url.drivername == "postgresql+asyncpg"
    assert t.url.port == 5433 and t.url.database == "chat"
    assert dict(t.url.query) == {}
    assert t.connect_args == {"ssl": "require"}
    assert not t.pgbouncer


def test_neon_pooled_host_turns_statement_caches_off() -> None:
    t = connect_target("postgresql://u:p@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/db")
    assert t.pgbouncer
    assert t.connect_args["statement_cache_size"] == 0
    assert t.connect_args["prepared_statement_cache_size"] == 0
    names = {t.connect_args["prepared_statement_name_func"]() for _ in range(3)}
    assert len(names) == 3
    assert not connect_target("postgresql://u:p@ep-cool-1234.neon.tech/db").pgbouncer
    assert connect_target("postgresql://u:p@h/db", pgbouncer=True).pgbouncer


def test_bad_urls_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a Postgres URL"):
        connect_target("mysql://u:p@h/db")
    with pytest.raises(ValueError, match="sslmode='sometimes'"):
        connect_target("postgresql://u:p@h/db?sslmode=sometimes")


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        names = {r[0] for r in rows}
    await engine.dispose()
    return names


async def test_migrations_up_and_down(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert {"sessions", "messages", "companies", "alembic_version"} <= await _tables(
            database_url
        )
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO sessions (id, user_id) VALUES ('s1', 'alice')"))
            insert = text(
                "INSERT INTO messages (id, turn_id, session_id, role, content, client_message_id)"
                " VALUES (:id, :turn, 's1', :role, 'hi', :cmid)"
            )
            turn = uuid.uuid4()
            await conn.execute(
                insert, {"id": uuid.uuid4(), "turn": turn, "role": "user", "cmid": "m1"}
            )
            await conn.execute(
                insert, {"id": uuid.uuid4(), "turn": turn, "role": "assistant", "cmid": None}
            )
        # The same client_message_id in one session is one message, whatever retried it.
        with pytest.raises(IntegrityError, match="uq_messages_client_message"):
            async with engine.begin() as conn:
                await conn.execute(
                    insert,
                    {"id": uuid.uuid4(), "turn": uuid.uuid4(), "role": "user", "cmid": "m1"},
                )
        # A turn has at most one row per role: a retried persist_turn cannot write twice.
        with pytest.raises(IntegrityError, match="uq_messages_turn_role"):
            async with engine.begin() as conn:
                await conn.execute(
                    insert, {"id": uuid.uuid4(), "turn": turn, "role": "assistant", "cmid": None}
                )
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO companies (name, description, capabilities, location) VALUES "
                    "('Acme PCB', 'Printed circuit boards', 'small batch PCB assembly', 'Ohio')"
                )
            )
            hit = await conn.execute(
                text(
                    "SELECT name FROM companies "
                    "WHERE search @@ websearch_to_tsquery('english', 'pcb assembly')"
                )
            )
            assert hit.scalar() == "Acme PCB"
            # Deleting a session removes its transcript.
            await conn.execute(text("DELETE FROM sessions WHERE id = 's1'"))
            left = await conn.execute(text("SELECT count(*) FROM messages"))
            assert left.scalar() == 0

        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        assert await _tables(database_url) <= {"alembic_version"}
        await migrate.upgrade(engine)  # and up again from nothing
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def _has_embedding_column(url: str) -> bool:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        found = await conn.fetchval(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'companies' AND column_name = 'embedding'"
        )
    finally:
        await conn.close()
    return found is not None


async def test_companies_get_a_vector_column_where_pgvector_exists(
    vector_database_url: str,
) -> None:
    engine = create_engine(vector_database_url, pool_size=1, max_overflow=0)
    try:
        await migrate.upgrade(engine)
        assert await _has_embedding_column(vector_database_url)
        async with engine.begin() as conn:
            vec = "[" + ",".join(["0.1"] * 384) + "]"
            await conn.execute(
                text("INSERT INTO companies (name, embedding) VALUES ('V', CAST(:v AS vector))"),
                {"v": vec},
            )
            dist = await conn.execute(
                text("SELECT embedding <=> CAST(:v AS vector) FROM companies"), {"v": vec}
            )
            assert dist.scalar() == pytest.approx(0.0, abs=1e-6)
    finally:
        await engine.dispose()


async def test_without_pgvector_the_schema_keeps_full_text_only(database_url: str) -> None:
    probe = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(False)
    )
    available = await probe.fetchval("SELECT 1 FROM pg_available_extensions WHERE name='vector'")
    await probe.close()
    if available:
        pytest.skip("this Postgres has pgvector; the fallback runs against one without it")
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        await migrate.upgrade(engine)
        assert not await _has_embedding_column(database_url)
    finally:
        await engine.dispose()


@pytest.fixture
def pgbouncer_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A real PgBouncer in transaction mode (what Neon's pooled endpoint runs) in front of
    the test database, over TCP."""
    binary = shutil.which("pgbouncer")
    if binary is None:
        pytest.skip("pgbouncer is not installed (.ci/run installs it)")
    url = make_url(database_url)
    if url.host is None:
        pytest.skip("PgBouncer is put in front of a TCP Postgres (set DATABASE_URL)")
    port = free_port()
    # PgBouncer refuses to run as root; it drops to `postgres` then, which must be able to
    # read its files: a world-readable directory of their own, not pytest's private tmp.
    conf = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    conf.chmod(0o755)
    (conf / "users.txt").write_text(f'"{url.username}" ""\n')
    ini = conf / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"{url.database} = host={url.host} port={url.port or 5432} dbname={url.database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        "auth_type = trust\n"
        f"auth_file = {conf / 'users.txt'}\n"
        "pool_mode = transaction\n"
        "default_pool_size = 2\n"
        "unix_socket_dir =\n"
    )
    argv = [binary, str(ini)]
    if os.geteuid() == 0:
        argv = [binary, "-u", "postgres", str(ini)]
    proc = ManagedProcess(
        "pgbouncer",
        argv,
        log_path=tmp_path / "stdout.log",
        ready=lambda: port_open("127.0.0.1", port),
    )
    proc.start()
    proc.wait_ready()
    yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    proc.stop()
    shutil.rmtree(conf, ignore_errors=True)


async def test_pool_works_through_pgbouncer_with_statement_cache_off(pgbouncer_url: str) -> None:
    engine = create_engine(pgbouncer_url, pool_size=4, max_overflow=0, pgbouncer=True)
    try:
        await migrate.upgrade(engine)

        async def one(i: int) -> int:
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO sessions (id, user_id) VALUES (:id, 'u')"), {"id": f"s{i}"}
                )
                got = await conn.execute(
                    text("SELECT count(*) FROM sessions WHERE id = :id"), {"id": f"s{i}"}
                )
                return int(got.scalar_one())

        # More concurrent transactions than PgBouncer has server connections, each with the
        # same parameterised statements: with asyncpg's cache on, these collide.
        results = await asyncio.gather(*(one(i) for i in range(40)))
        assert results == [1] * 40
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
    database_url: str,
) -> None:
    """Postgres ending a backend (a restart, a pooler's or Neon's idle cut) closes its
    socket: the pool hands out a fresh connection, so the next query does not fail."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    pooled: list[Any] = []  # the driver connections as they go back into the pool
    event.listen(engine.sync_engine, "checkin", lambda conn, _record: pooled.append(conn))
    plain = connect_target(database_url).url.set(drivername="postgresql")
    admin = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        # The client learns of it from the socket, as it would of a restart.
        closed = pooled[-1].driver_connection
        deadline = asyncio.get_running_loop().time() + 10
        while not closed.is_closed():
            assert asyncio.get_running_loop().time() < deadline, "the socket never closed"
            await asyncio.sleep(0.01)
        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await admin.close()
        await engine.dispose()
