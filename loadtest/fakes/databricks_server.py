"""A local server speaking the Databricks Vector Search REST API used by the real client.

The routes are those `VectorSearchClient(workspace_url=..., personal_access_token=...)`
calls (see databricks/ai_search/client.py and index.py): with a PAT the client sends
everything, queries included, to the workspace URL, and queries are GETs with a JSON body.
"""

from __future__ import annotations

import json
import math
import operator
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.fakes.openai_server import hash_embedding
from loadtest.fakes.scripting import FakeServer, databricks_error_body

SAMPLE_DATASET = Path(__file__).with_name("sample_companies.jsonl")
TEXT_COLUMNS = ("name", "description", "industry", "capabilities", "location")
_API = "/api/2.0/vector-search"


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _words(value: Any) -> set[str]:
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(value: Any, pattern: str) -> bool:
    # With % it is an SQL pattern; a bare word matches as a case-insensitive substring.
    regex = ".*".join(map(re.escape, pattern.split("%"))) if "%" in pattern else None
    return any(
        v is not None
        and (re.fullmatch(regex, str(v), re.I) if regex else pattern.lower() in str(v).lower())
        for v in _values(value)
    )


def row_matches(row: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """The documented `filters` forms: `col` (equality, or IN for a list), `col NOT`, `col LIKE`.
    List-valued columns match if any element does."""
    for key, want in filters.items():
        col, _, op = key.strip().partition(" ")
        if op == "LIKE":
            ok = _like(row.get(col), str(want))
        elif op in ("", "NOT"):
            ok = any(v in _values(want) for v in _values(row.get(col))) != (op == "NOT")
        else:
            raise ValueError(f"The fake does not support the filter {key!r}")
        if not ok:
            return False
    return True


class FakeDatabricksServer(FakeServer):
    """One Delta Sync index with managed embeddings, holding `rows` (dicts, or a JSONL path).

    Text queries score by the share of query words found in `text_columns`; rows scoring 0
    are left out. Vector queries rank by cosine over `hash_embedding` of those columns (the
    OpenAI fake's embeddings). `score` is the last column, as the real service returns it.
    Script endpoints: "index" (get_index), "serving-endpoint", "query" (and next pages).
    A wrong token gets 403 PERMISSION_DENIED ("Invalid access token."), a missing one 401.
    """

    bad_token_status = 403

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]] | str | Path = SAMPLE_DATASET,
        *,
        token: str | None = None,
        endpoint_name: str = "fake-vs-endpoint",
        index_name: str = "main.default.companies",
        primary_key: str = "id",
        text_columns: Sequence[str] = TEXT_COLUMNS,
        page_size: int = 100,
        latency_ms: float = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.rows = load_rows(rows) if isinstance(rows, str | Path) else [dict(r) for r in rows]
        self.endpoint_name, self.index_name = endpoint_name, index_name
        self.primary_key = primary_key
        self.text_columns = tuple(text_columns)
        self.page_size = page_size
        self.latency_ms = latency_ms
        self._pages: dict[str, tuple[list[str], list[list[Any]]]] = {}
        # What queries are scored against: words for query_text, embeddings for query_vector.
        self._texts = [" ".join(str(r.get(c) or "") for c in self.text_columns) for r in self.rows]
        self._row_words = [_words(text) for text in self._texts]
        self._vectors: dict[int, list[list[float]]] = {}  # by dimension, made on first use
        routes = [
            Route(f"{_API}/endpoints/{{endpoint}}/indexes/{{index}}", self._describe),
            Route(f"{_API}/indexes/{{index}}", self._describe),
            Route(f"{_API}/indexes/{{index}}/query", self._query, methods=["GET", "POST"]),
            Route(f"{_API}/indexes/{{index}}/query-next-page", self._next, methods=["GET", "POST"]),
            Route("/api/2.0/serving-endpoints/{name}", self._serving_endpoint),
        ]
        super().__init__(routes, databricks_error_body, token=token, host=host, port=port)

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(k for row in self.rows for k in row))

    async def _begin(self, request: Request, endpoint: str) -> dict[str, Any] | Response:
        started = await self.begin(request, endpoint)
        if isinstance(started, Response):
            return started
        body, step = started
        params = request.path_params
        if params.get("endpoint", self.endpoint_name) != self.endpoint_name:
            return self.error(404, f"Vector search endpoint {params['endpoint']} not found.")
        if params.get("index", self.index_name) != self.index_name:
            return self.error(404, f"Index {params['index']} does not exist.")
        latency = step.latency_ms if step and step.latency_ms is not None else self.latency_ms
        await self.sleep(latency / 1000)
        return body

    async def _describe(self, request: Request) -> Response:
        if isinstance(body := await self._begin(request, "index"), Response):
            return body
        # The fields the client reads, and enough others to look like the real thing.
        model = {"name": "description", "embedding_model_endpoint_name": "databricks-gte-large-en"}
        index_url = f"{self.url}{_API}/indexes/{self.index_name}"
        description: dict[str, Any] = {
            "name": self.index_name,
            "endpoint_name": self.endpoint_name,
            "index_type": "DELTA_SYNC",
            "primary_key": self.primary_key,
            "delta_sync_index_spec": {
                "source_table": f"{self.index_name}_source",
                "pipeline_type": "TRIGGERED",
                "embedding_source_columns": [model],
                "columns_to_sync": self.columns,
            },
            "status": {
                "detailed_state": "ONLINE_NO_PENDING_UPDATE",
                "ready": True,
                "indexed_row_count": len(self.rows),
                "index_url": index_url,
            },
        }
        return JSONResponse(description)

    async def _serving_endpoint(self, request: Request) -> Response:
        # get_index looks up the embedding model's endpoint to see if it is route-optimized.
        if isinstance(body := await self._begin(request, "serving-endpoint"), Response):
            return body
        name = request.path_params["name"]
        return JSONResponse({"name": name, "id": f"fake-{name}", "route_optimized": False})

    async def _query(self, request: Request) -> Response:
        if isinstance(body := await self._begin(request, "query"), Response):
            return body
        columns = body.get("columns")
        if not isinstance(columns, list) or not columns:
            return self.error(400, "Query must specify columns to return.")
        if missing := [c for c in columns if c not in self.columns]:
            return self.error(
                400, f"Requested columns to fetch are not present in index: {missing}"
            )
        if body.get("filter_string"):
            return self.error(400, "The fake supports filters_json, not filter_string.")
        try:
            filters = json.loads(body.get("filters_json") or "{}")
            keep = [i for i, row in enumerate(self.rows) if row_matches(row, filters)]
        except (ValueError, AttributeError) as exc:
            return self.error(400, f"Invalid filters_json: {exc}")
        if body.get("query_text"):
            wanted = _words(body["query_text"])
            scored = [(len(wanted & self._row_words[i]) / max(len(wanted), 1), i) for i in keep]
            scored = [(score, i) for score, i in scored if score > 0]
        elif query := body.get("query_vector"):
            if len(query) not in self._vectors:  # embed the rows once per dimension
                self._vectors[len(query)] = [hash_embedding(t, len(query)) for t in self._texts]
            vectors, norm = self._vectors[len(query)], math.hypot(*query) or 1.0
            scored = [(sum(map(operator.mul, query, vectors[i])) / norm, i) for i in keep]
        else:
            return self.error(400, "Either query_text or query_vector must be provided.")
        scored.sort(key=lambda si: -si[0])  # stable: ties keep the dataset's order
        top = scored[: int(body.get("num_results", 10))]
        return self._page(columns, [[self.rows[i].get(c) for c in columns] + [s] for s, i in top])

    def _page(self, columns: list[str], data: list[list[Any]]) -> Response:
        names = [{"name": c} for c in [*columns, "score"]]
        page, rest = data[: self.page_size], data[self.page_size :]
        out: dict[str, Any] = {"manifest": {"column_count": len(names), "columns": names}}
        out["result"] = {"row_count": len(page), "data_array": page}
        if rest:  # the client follows next_page_token through /query-next-page
            out["next_page_token"] = token = uuid.uuid4().hex
            self._pages[token] = (columns, rest)
        return JSONResponse(out)

    async def _next(self, request: Request) -> Response:
        if isinstance(body := await self._begin(request, "query"), Response):
            return body
        saved = self._pages.pop(str(body.get("page_token")), None)
        if saved is None:
            return self.error(400, "Invalid or expired page_token.")
        return self._page(*saved)
