"""Whether a message asks the data a question, for turns without a tool-calling model:
no local path writes SQL, so such a question gets a plain reply saying it needs a
configured model instead of a small model's guess at the numbers.

A question counts when it asks for a quantity or a listing ("how many", "total per
month", "cuántas", "lista de") about something the data holds: a table's name (singular
or plural, underscores as spaces) or, for the sample maintenance data, the words people
use for what it holds, in English and Spanish."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from activities.sql.catalog import Catalog
from shared.language import fold_accents

log = logging.getLogger(__name__)

_ASKS_FOR_DATA = re.compile(
    r"\b(?:how many|number of|count|total|sum of|average|avg|mean|median|"
    r"most|least|top \d+|highest|lowest|per (?:day|week|month|quarter|year|site|plant)|"
    r"by (?:day|week|month|quarter|year|site|plant|status|kind|type|category)|"
    r"trend|breakdown|list (?:all|the|every)|which \w+ (?:have|has|had|need|needs|are|is)|"
    # Spanish, accents folded
    r"cuant[oa]s?|numero de|promedio|media de|suma de|total de|por (?:dia|semana|mes|"
    r"trimestre|ano|sitio|planta)|tendencia|lista de|que \w+ (?:tienen|necesitan|estan))\b",
    re.I,
)
# What the sample holds, as people say it (the tables' own names are added from the catalog).
SAMPLE_TERMS = (
    "machine", "machines", "asset", "assets", "equipment", "work order", "work orders",
    "maintenance", "plant", "plants", "site", "sites", "repair", "repairs", "inspection",
    "inspections", "breakdown", "breakdowns", "downtime",
    "maquina", "maquinas", "equipo", "equipos", "mantenimiento", "mantenimientos",
    "orden de trabajo", "ordenes de trabajo", "planta", "plantas", "reparacion",
    "reparaciones", "inspeccion", "inspecciones", "averia", "averias",
)  # fmt: skip


def terms_of(catalog: Catalog, *, sample: bool) -> frozenset[str]:
    """The words that name what `catalog` holds: each table's name, singular and plural."""
    terms: set[str] = set(SAMPLE_TERMS) if sample else set()
    for table in catalog.tables:
        name = table.name.lower().replace("_", " ")
        terms.add(name)
        terms.add(name[:-1] if name.endswith("s") else f"{name}s")
    return frozenset(t for t in terms if len(t) > 2)


def asks_data(text: str, terms: Iterable[str]) -> bool:
    """A quantity or listing asked for, about one of `terms` (accents and case ignored)."""
    folded = fold_accents(text).lower()
    if not _ASKS_FOR_DATA.search(folded):
        return False
    words = " " + re.sub(r"[^a-z0-9]+", " ", folded) + " "
    return any(f" {fold_accents(term).lower()} " in words for term in terms)
