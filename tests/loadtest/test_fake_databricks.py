"""The real `databricks-vectorsearch` client against FakeDatabricksServer.

The client is blocking (requests), so these tests are plain sync functions."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from loadtest.fakes import SAMPLE_DATASET, FakeDatabricksServer, hash_embedding, load_rows

# The shim warns on first import and attributes the warning to the importer, so
# pyproject's "ignore::DeprecationWarning:databricks.*" filter does not catch it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "databricks-vectorsearch is deprecated", DeprecationWarning)
    from databricks.vector_search.client import VectorSearchClient
    from databricks.vector_search.exceptions import (
        BadRequest,
        NotFound,
        PermissionDenied,
        VectorSearchException,
    )

TOKEN = "dapi-test-token"
ENDPOINT = "vs-endpoint"
INDEX = "main.default.companies"
COLUMNS = ["id", "name", "state"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDatabricksServer]:
    with FakeDatabricksServer(token=TOKEN, endpoint_name=ENDPOINT, index_name=INDEX) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset(server: FakeDatabricksServer) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


def _index(server: FakeDatabricksServer, token: str = TOKEN) -> Any:
    client = VectorSearchClient(
        workspace_url=server.url, personal_access_token=token, disable_notice=True
    )
    return client.get_index(endpoint_name=ENDPOINT, index_name=INDEX)


def _search(index: Any, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("columns", COLUMNS)
    result: dict[str, Any] = index.similarity_search(disable_notice=True, **kwargs)
    return result


def test_sample_dataset_is_varied() -> None:
    rows = load_rows(SAMPLE_DATASET)
    assert len(rows) == 20
    assert len({r["state"] for r in rows}) > 10
    assert len({r["industry"] for r in rows}) > 10
    for row in rows:
        assert {
            "id",
            "name",
            "description",
            "industry",
            "location",
            "contact",
            "capabilities",
        } <= set(row)
        assert row["location"] == f"{row['city']}, {row['state']}"


def test_get_index_and_text_query(server: FakeDatabricksServer) -> None:
    index = _index(server)
    result = _search(index, query_text="steel welding", num_results=3, query_type="HYBRID")
    assert result["manifest"] == {
        "column_count": 4,
        "columns": [{"name": "id"}, {"name": "name"}, {"name": "state"}, {"name": "score"}],
    }
    rows = result["result"]["data_array"]
    assert result["result"]["row_count"] == len(rows) == 3
    assert rows[0][:3] == [1, "Lone Star Precision Welding", "TX"]
    scores = [r[-1] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    assert "next_page_token" not in result
    query = server.requests[-1]
    assert query["method"] == "GET"
    assert query["path"] == f"/api/2.0/vector-search/indexes/{INDEX}/query"
    assert query["body"]["query_text"] == "steel welding"
    assert query["body"]["query_type"] == "HYBRID"
    assert query["body"]["columns"] == COLUMNS


def test_no_match_returns_no_rows(server: FakeDatabricksServer) -> None:
    result = _search(_index(server), query_text="zzzz qqqq", num_results=5)
    assert result["result"] == {"row_count": 0, "data_array": []}


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        ({"state": "TX"}, {1, 16, 20}),
        ({"state": ["LA", "AZ"]}, {6, 9, 14}),
        ({"name LIKE": "welding"}, {1}),
        ({"capabilities": "welding", "state NOT": "TX"}, {9}),
        ({"industry": "Manufacturing", "name LIKE": "%robotics"}, {10}),
    ],
)
def test_filters(
    server: FakeDatabricksServer, filters: dict[str, Any], expected_ids: set[int]
) -> None:
    # A query word present in every row, so only the filter decides what comes back.
    words = " ".join(r["industry"] for r in load_rows(SAMPLE_DATASET))
    result = _search(_index(server), query_text=words, filters=filters, num_results=20)
    assert {row[0] for row in result["result"]["data_array"]} == expected_ids
    assert server.requests[-1]["body"]["filters_json"] is not None


def test_vector_query_ranks_nearest_first(server: FakeDatabricksServer) -> None:
    row = load_rows(SAMPLE_DATASET)[4]
    text = " ".join(str(row[c]) for c in server.text_columns)
    result = _search(_index(server), query_vector=hash_embedding(text, 64), num_results=4)
    rows = result["result"]["data_array"]
    assert len(rows) == 4
    assert rows[0][0] == row["id"]
    assert rows[0][-1] == pytest.approx(1.0)


def test_paging_follows_next_page_token() -> None:
    with FakeDatabricksServer(token=TOKEN, endpoint_name=ENDPOINT, page_size=2) as fake:
        result = _search(_index(fake), query_text="welding", num_results=10)
        assert result["result"]["row_count"] == len(result["result"]["data_array"]) == 3
        assert [r["path"].rsplit("/", 1)[-1] for r in fake.requests[-2:]] == [
            "query",
            "query-next-page",
        ]


def test_unsupported_filter_is_rejected(server: FakeDatabricksServer) -> None:
    with pytest.raises(BadRequest, match="id >"):
        _search(_index(server), query_text="welding", filters={"id >": 3})


def test_unknown_index_or_column(server: FakeDatabricksServer) -> None:
    client = VectorSearchClient(
        workspace_url=server.url, personal_access_token=TOKEN, disable_notice=True
    )
    with pytest.raises(NotFound) as err:
        client.get_index(endpoint_name=ENDPOINT, index_name="main.default.nope")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(BadRequest):
        _search(_index(server), columns=["id", "nope"], query_text="x")


def test_wrong_token_is_403_and_missing_token_401(server: FakeDatabricksServer) -> None:
    with pytest.raises(PermissionDenied) as err:
        _index(server, token="dapi-wrong")
    assert err.value.status_code == 403
    response = httpx.get(f"{server.url}/api/2.0/vector-search/indexes/{INDEX}")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert set(response.json()) == {"error_code", "message"}


def test_scripted_401(server: FakeDatabricksServer) -> None:
    index = _index(server)
    server.script({"endpoint": "query", "status": 401})
    with pytest.raises(VectorSearchException) as err:
        _search(index, query_text="welding")
    assert err.value.status_code == 401
    assert err.value.error_code == "UNAUTHENTICATED"


def test_scripted_429_is_retried_after_retry_after(server: FakeDatabricksServer) -> None:
    index = _index(server)
    server.script({"endpoint": "query", "status": 429, "retry_after": 1})
    started = time.monotonic()
    result = _search(index, query_text="welding")
    assert time.monotonic() - started >= 1.0  # the client honoured Retry-After
    assert result["result"]["row_count"] == 3
    assert [r["endpoint"] for r in server.requests[-2:]] == ["query", "query"]


def test_scripted_429_without_retries(server: FakeDatabricksServer) -> None:
    index = _index(server)
    server.script({"endpoint": "query", "status": 429, "times": 2})
    # urllib3 turns a 429 it may not retry into RetryError before the SDK sees it.
    with pytest.raises(requests.exceptions.RetryError):
        _search(index, query_text="welding", total_retries=0)
    response = httpx.get(
        f"{server.url}/api/2.0/vector-search/indexes/{INDEX}/query",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


@pytest.mark.parametrize(("status", "error"), [(400, BadRequest), (500, VectorSearchException)])
def test_scripted_errors(server: FakeDatabricksServer, status: int, error: type[Exception]) -> None:
    index = _index(server)
    server.script({"endpoint": "query", "status": status, "message": "scripted"})
    with pytest.raises(error, match="scripted"):
        _search(index, query_text="welding", total_retries=0)
    assert _search(index, query_text="welding")["result"]["row_count"] == 3


def test_scripted_hang(server: FakeDatabricksServer) -> None:
    server.script({"endpoint": "index", "hang": True})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            f"{server.url}/api/2.0/vector-search/indexes/{INDEX}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=0.5,
        )
    assert _index(server).name == INDEX
