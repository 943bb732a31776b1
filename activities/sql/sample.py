"""The sample maintenance database `chatbot dev` loads (schema `sample_maintenance`):
sites, equipment, maintenance schedules and work orders, a few thousand rows generated
from a fixed seed, with dates around the day it is loaded. Labelled SAMPLE DATA in its
comments, which the model reads. Queried as the role `chatbot_data_reader`, which may
only read this schema."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SCHEMA = "sample_maintenance"
READER_ROLE = "chatbot_data_reader"
SEED = 20261207
DUPLICATE_OBJECT = "42710"

SITES = [
    ("North Plant", "Bilbao", "Spain"),
    ("Harbor Works", "Rotterdam", "Netherlands"),
    ("Valley Mill", "Porto", "Portugal"),
    ("Lakeside Assembly", "Chicago", "United States"),
    ("Ridge Foundry", "Pittsburgh", "United States"),
    ("Delta Packaging", "Monterrey", "Mexico"),
    ("Summit Chemicals", "Lyon", "France"),
    ("Coastal Bottling", "Valencia", "Spain"),
]
CATEGORIES = {
    "pump": ["Grundfos", "KSB", "Flowserve"],
    "compressor": ["Atlas Copco", "Ingersoll Rand", "Kaeser"],
    "conveyor": ["Dorner", "Hytrol", "Interroll"],
    "cnc machine": ["Haas", "DMG Mori", "Mazak"],
    "boiler": ["Bosch", "Viessmann", "Cleaver-Brooks"],
    "hvac unit": ["Carrier", "Trane", "Daikin"],
    "forklift": ["Toyota", "Linde", "Jungheinrich"],
    "press": ["Schuler", "Aida", "Komatsu"],
}
TAG_PREFIXES = {
    "pump": "PMP",
    "compressor": "CMP",
    "conveyor": "CNV",
    "cnc machine": "CNC",
    "boiler": "BLR",
    "hvac unit": "HVA",
    "forklift": "FLT",
    "press": "PRS",
}
SCHEDULE_KINDS = {"preventive": (30, 180), "inspection": (14, 90), "calibration": (90, 365)}
WORK_KINDS = ["preventive", "corrective", "inspection"]
PRIORITIES = ["low", "normal", "high", "urgent"]

DDL = f"""
CREATE SCHEMA {SCHEMA};
COMMENT ON SCHEMA {SCHEMA} IS
  'SAMPLE DATA: a fictional plant maintenance database generated for demos; '
  'say so when answering from it';
CREATE TABLE {SCHEMA}.sites (
  id integer PRIMARY KEY,
  name text NOT NULL,
  city text NOT NULL,
  country text NOT NULL
);
COMMENT ON TABLE {SCHEMA}.sites IS 'SAMPLE DATA. The plants where equipment is installed';
CREATE TABLE {SCHEMA}.equipment (
  id integer PRIMARY KEY,
  site_id integer NOT NULL REFERENCES {SCHEMA}.sites(id),
  tag text NOT NULL UNIQUE,
  name text NOT NULL,
  category text NOT NULL,
  manufacturer text NOT NULL,
  installed_on date NOT NULL,
  status text NOT NULL CHECK (status IN ('in_service', 'down', 'retired')),
  criticality text NOT NULL CHECK (criticality IN ('low', 'medium', 'high'))
);
COMMENT ON TABLE {SCHEMA}.equipment IS 'SAMPLE DATA. Machines and other assets, one row each';
COMMENT ON COLUMN {SCHEMA}.equipment.tag IS 'the asset tag painted on the machine, e.g. PMP-0012';
COMMENT ON COLUMN {SCHEMA}.equipment.status IS 'in_service, down (out of order) or retired';
CREATE TABLE {SCHEMA}.maintenance_schedules (
  id integer PRIMARY KEY,
  equipment_id integer NOT NULL REFERENCES {SCHEMA}.equipment(id),
  kind text NOT NULL CHECK (kind IN ('preventive', 'inspection', 'calibration')),
  interval_days integer NOT NULL CHECK (interval_days > 0),
  last_done date,
  next_due date NOT NULL
);
COMMENT ON TABLE {SCHEMA}.maintenance_schedules IS
  'SAMPLE DATA. Recurring maintenance each machine needs; next_due is when it is due next';
CREATE TABLE {SCHEMA}.work_orders (
  id integer PRIMARY KEY,
  equipment_id integer NOT NULL REFERENCES {SCHEMA}.equipment(id),
  kind text NOT NULL CHECK (kind IN ('preventive', 'corrective', 'inspection')),
  priority text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
  status text NOT NULL CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
  opened_on date NOT NULL,
  closed_on date,
  cost_eur numeric(10, 2) NOT NULL DEFAULT 0,
  description text NOT NULL
);
COMMENT ON TABLE {SCHEMA}.work_orders IS
  'SAMPLE DATA. Maintenance jobs: corrective ones fix a failure, preventive ones follow a schedule';
COMMENT ON COLUMN {SCHEMA}.work_orders.cost_eur IS 'labour and parts, in euros (0 while open)';
"""


def generate(today: date) -> dict[str, list[dict[str, Any]]]:
    """The sample's rows: the same for the same day, dates spread around it."""
    rnd = random.Random(SEED)
    sites = [{"id": i, "name": n, "city": c, "country": k} for i, (n, c, k) in enumerate(SITES, 1)]
    equipment: list[dict[str, Any]] = []
    for i in range(1, 601):
        category = rnd.choice(list(CATEGORIES))
        equipment.append(
            {
                "id": i,
                "site_id": rnd.randint(1, len(SITES)),
                "tag": f"{TAG_PREFIXES[category]}-{i:04d}",
                "name": f"{category.title()} {i}",
                "category": category,
                "manufacturer": rnd.choice(CATEGORIES[category]),
                "installed_on": today - timedelta(days=rnd.randint(200, 6000)),
                "status": rnd.choices(["in_service", "down", "retired"], [88, 7, 5])[0],
                "criticality": rnd.choices(["low", "medium", "high"], [40, 40, 20])[0],
            }
        )
    schedules: list[dict[str, Any]] = []
    for e in equipment:
        if e["status"] == "retired":
            continue
        for kind, (low, high) in SCHEDULE_KINDS.items():
            if kind != "preventive" and rnd.random() < 0.5:
                continue
            interval = rnd.randint(low, high)
            last = today - timedelta(days=rnd.randint(0, interval + 30))
            schedules.append(
                {
                    "id": len(schedules) + 1,
                    "equipment_id": e["id"],
                    "kind": kind,
                    "interval_days": interval,
                    "last_done": last,
                    "next_due": last + timedelta(days=interval),
                }
            )
    orders: list[dict[str, Any]] = []
    for n in range(1, 3001):
        e = rnd.choice(equipment)
        kind = rnd.choices(WORK_KINDS, [45, 40, 15])[0]
        opened = today - timedelta(days=rnd.randint(0, 540))
        status = rnd.choices(["open", "in_progress", "done", "cancelled"], [8, 7, 80, 5])[0]
        closed = opened + timedelta(days=rnd.randint(0, 20)) if status == "done" else None
        if closed is not None and closed > today:
            closed = today
        cost = round(rnd.uniform(80, 9000), 2) if status == "done" else 0
        orders.append(
            {
                "id": n,
                "equipment_id": e["id"],
                "kind": kind,
                "priority": rnd.choices(PRIORITIES, [20, 50, 22, 8])[0],
                "status": status,
                "opened_on": opened,
                "closed_on": closed,
                "cost_eur": cost,
                "description": f"{kind.title()} work on {e['tag']}",
            }
        )
    return {
        "sites": sites,
        "equipment": equipment,
        "maintenance_schedules": schedules,
        "work_orders": orders,
    }


async def _insert(conn: AsyncConnection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    names = ", ".join(columns)
    values = ", ".join(f":{c}" for c in columns)
    await conn.execute(text(f"INSERT INTO {SCHEMA}.{table} ({names}) VALUES ({values})"), rows)


async def _ensure_reader(conn: AsyncConnection) -> None:
    """The role the data tool queries as: it may log in and read this schema, nothing
    else; its sessions are read-only with a statement timeout whatever a client sets."""
    exists = await conn.scalar(
        text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}
    )
    if not exists:
        try:
            async with conn.begin_nested():
                await conn.execute(text(f"CREATE ROLE {READER_ROLE} LOGIN"))
        except DBAPIError as err:  # created by a loader running beside this one
            if getattr(err.orig, "sqlstate", None) != DUPLICATE_OBJECT:
                raise
    await conn.execute(text(f"ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on"))
    await conn.execute(text(f"ALTER ROLE {READER_ROLE} SET statement_timeout = '10s'"))


async def load_sample(engine: AsyncEngine, *, today: date | None = None) -> dict[str, int]:
    """(Re)load the sample schema and grant the reader role SELECT on it; rows per table."""
    rows = generate(today or date.today())
    async with engine.begin() as conn:
        # One loader at a time per database (`chatbot dev` and a test may both start).
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": SCHEMA})
        await _ensure_reader(conn)
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        for statement in DDL.split(";\n"):
            if statement.strip():
                await conn.execute(text(statement))
        for table, table_rows in rows.items():
            await _insert(conn, table, table_rows)
        database = await conn.scalar(text("SELECT current_database()"))
        await conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {READER_ROLE}'))
        await conn.execute(text(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {READER_ROLE}"))
        await conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {READER_ROLE}"))
    return {table: len(table_rows) for table, table_rows in rows.items()}


def reader_url(database_url: str) -> str:
    """The same database as the reader role (no password: the sample is for servers that
    trust local connections, as `chatbot dev`'s does)."""
    url = make_url(database_url).set(username=READER_ROLE)._replace(password=None)
    return url.render_as_string(hide_password=False)
