"""Company search. With Databricks configured: the official Vector Search client against
the index (its synchronous client runs in a thread). Otherwise: the `companies` table in
Postgres, full-text and (where pgvector and embeddings exist) vector search, fused by
reciprocal rank."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Mapping
from typing import Any

import requests
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.embeddings import Embedder, vector_literal
from activities.intent.query import location_aliases
from shared.breaker import Breaker, ProviderUnavailable, guarded, unavailable_error
from shared.config import Settings
from shared.db.schema import has_column
from shared.tools import Company, CompanyResults, SearchCompaniesInput

COLUMNS = ["name", "description", "industry", "location", "contact", "capabilities"]
RRF_K = 60  # the usual reciprocal-rank-fusion constant
CANDIDATES = 20
_WORD = re.compile(r"[A-Za-z0-9]+")


def _rows_to_companies(result: Mapping[str, Any]) -> list[Company]:
    columns = [c["name"] for c in result.get("manifest", {}).get("columns", [])]
    companies = []
    for row in result.get("result", {}).get("data_array", []) or []:
        values = dict(zip(columns, row, strict=False))
        companies.append(
            Company(
                **{k: str(values.get(k) or "") for k in COLUMNS},
                score=float(values.get("score") or 0.0),
            )
        )
    return companies


class DatabricksCompanySearch:
    """The index handle is made on first use (it is an HTTP call) and reused."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._index: Any = None
        self._lock = threading.Lock()

    def _get_index(self) -> Any:
        with self._lock:
            if self._index is None:
                from databricks.vector_search.client import VectorSearchClient

                s = self._settings
                client = VectorSearchClient(
                    workspace_url=s.databricks_host,
                    personal_access_token=(
                        s.databricks_token.get_secret_value() if s.databricks_token else None
                    ),
                    disable_notice=True,
                )
                self._index = client.get_index(
                    endpoint_name=s.databricks_endpoint_name, index_name=s.databricks_index_name
                )
            return self._index

    def search(self, req: SearchCompaniesInput) -> CompanyResults:
        from databricks.ai_search.exceptions import AISearchException

        filters = {"location LIKE": req.location} if req.location else None
        try:
            result = self._get_index().similarity_search(
                columns=COLUMNS,
                query_text=req.query,
                filters=filters,
                num_results=req.limit,
            )
        except AISearchException as err:
            status = err.status_code or 0
            if status in (400, 401, 403, 404):
                raise ApplicationError(
                    f"Databricks Vector Search refused the query ({status}): {err}; check "
                    "DATABRICKS_TOKEN, DATABRICKS_ENDPOINT_NAME and DATABRICKS_INDEX_NAME",
                    type="CompanySearchRejected",
                    non_retryable=True,
                ) from None
            raise ApplicationError(
                f"Databricks Vector Search failed ({status or 'no status'}): {err}",
                type="CompanySearchUnavailable",
            ) from None
        except requests.RequestException as err:
            raise ApplicationError(
                f"Databricks Vector Search unreachable: {err}", type="CompanySearchUnavailable"
            ) from None
        return CompanyResults(
            companies=_rows_to_companies(result), source="databricks", mode="vector index"
        )


class PostgresCompanySearch:
    def __init__(self, engine: AsyncEngine, embedder: Embedder | None) -> None:
        self._engine = engine
        self._embedder = embedder
        self._has_vectors: bool | None = None

    async def _vectors_available(self) -> bool:
        if self._has_vectors is None:
            # Added with `embedding` (0003): present wherever pgvector is.
            self._has_vectors = await has_column(self._engine, "companies", "embedding_model")
        return self._has_vectors

    async def search(self, req: SearchCompaniesInput) -> CompanyResults:
        words = _WORD.findall(req.query.lower())
        where = ""
        params: dict[str, Any] = {"n": CANDIDATES}
        if req.location:
            # Stored addresses spell places several ways ("Ohio" is "Columbus, OH").
            aliases = location_aliases(req.location)
            where = (
                " AND (" + " OR ".join(f"location ~* :loc{i}" for i in range(len(aliases))) + ")"
            )
            for i, alias in enumerate(aliases):
                params[f"loc{i}"] = rf"\m{re.escape(alias)}\M"
        ranked: list[list[int]] = []
        rows: dict[int, dict[str, Any]] = {}
        async with self._engine.connect() as conn:
            if words:
                # Any of the words (OR), ranked by cover density: real questions carry
                # words no company description has.
                # Snowball leaves plurals of acronyms alone ("PCBs" is not "PCB"): each
                # plural word also matches its singular.
                plurals = [a[:-1].lower() for a in re.findall(r"\b[A-Z]{2,}s\b", req.query)]
                params["q"] = " | ".join(dict.fromkeys([*words, *plurals]))
                hits = await conn.execute(
                    text(
                        "SELECT *, ts_rank_cd(search, to_tsquery('english', :q)) AS rank "
                        "FROM companies WHERE search @@ to_tsquery('english', :q)"
                        f"{where} ORDER BY rank DESC LIMIT :n"
                    ),
                    params,
                )
                lexical = [dict(r) for r in hits.mappings()]
                ranked.append([r["id"] for r in lexical])
                rows.update({r["id"]: r for r in lexical})
            use_vectors = self._embedder is not None and await self._vectors_available()
            if use_vectors and self._embedder is not None:
                [vector] = await self._embedder.embed([req.query])
                # Only this embedder's vectors compare with the query's. With a location
                # filter the search is exact over the rows in that place: the HNSW index
                # filters after taking its ~40 nearest, which may all be elsewhere.
                nearest = "ORDER BY embedding <=> CAST(:v AS vector) LIMIT :n"
                score = "*, 1 - (embedding <=> CAST(:v AS vector)) AS rank"
                mine = f"SELECT * FROM companies WHERE embedding_model = :model{where}"
                hits = await conn.execute(
                    text(
                        f"WITH c AS MATERIALIZED ({mine}) SELECT {score} FROM c {nearest}"
                        if where
                        else f"SELECT {score} FROM companies WHERE embedding_model = :model "
                        f"{nearest}"
                    ),
                    {**params, "v": vector_literal(vector), "model": self._embedder.name},
                )
                semantic = [dict(r) for r in hits.mappings()]
                ranked.append([r["id"] for r in semantic])
                rows.update({r["id"]: r for r in semantic})
        scores: dict[int, float] = {}
        for ranking in ranked:
            for position, company_id in enumerate(ranking):
                scores[company_id] = scores.get(company_id, 0.0) + 1 / (RRF_K + position + 1)
        best = sorted(scores, key=lambda cid: scores[cid], reverse=True)[: req.limit]
        companies = [
            Company(
                **{k: rows[cid][k] for k in COLUMNS},
                score=round(scores[cid], 5),
                sample=rows[cid]["source"] == "sample",
            )
            for cid in best
        ]
        embedder = self._embedder.name if use_vectors and self._embedder is not None else None
        mode = f"hybrid (full-text + {embedder})" if embedder else "full-text only (no embeddings)"
        return CompanyResults(
            companies=companies,
            source="postgres",
            sample=any(c.sample for c in companies),
            mode=mode,
            embedder=embedder,
        )


def _databricks_failed(err: BaseException) -> bool:
    """Databricks itself failing (unreachable, 5xx), not a query it refused."""
    return isinstance(err, ApplicationError) and err.type == "CompanySearchUnavailable"


class CompanySearch:
    """The `search_companies` activity over whichever backend is configured."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        embedder: Embedder | None,
        breaker: Breaker | None = None,
    ) -> None:
        self._databricks = (
            DatabricksCompanySearch(settings) if settings.databricks_enabled else None
        )
        self._breaker = breaker  # on Databricks
        self._postgres = PostgresCompanySearch(engine, embedder)

    @activity.defn
    async def search_companies(self, req: SearchCompaniesInput) -> CompanyResults:
        if self._databricks is not None:
            try:
                async with guarded(self._breaker, _databricks_failed):
                    return await asyncio.to_thread(self._databricks.search, req)
            except ProviderUnavailable as err:
                raise unavailable_error(err) from None
        return await self._postgres.search(req)
