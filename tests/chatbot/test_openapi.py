"""The OpenAPI document says what the gateway does: bearer auth on /v1, every error status
a route can answer, and the patterns the server enforces on its inputs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chatbot.app import create_app
from shared.config import load_settings

# Every operation and the error statuses it can answer (400: a body that is not UTF-8 JSON,
# or a cursor that decodes to nothing; 413: the body size limit; 502: the model provider
# refused; 503: a dependency is down or the pool is busy).
EXPECTED_ERRORS: dict[tuple[str, str], set[int]] = {
    ("post", "/v1/sessions"): {400, 401, 409, 413, 422, 503},
    ("get", "/v1/sessions"): {400, 401, 422, 503},
    ("get", "/v1/sessions/{session_id}"): {401, 404, 422, 503},
    ("patch", "/v1/sessions/{session_id}"): {400, 401, 404, 413, 422, 503},
    ("delete", "/v1/sessions/{session_id}"): {401, 404, 422, 503},
    ("post", "/v1/sessions/{session_id}/messages"): {
        400,
        401,
        404,
        409,
        413,
        422,
        429,
        502,
        503,
    },
    ("get", "/v1/sessions/{session_id}/messages"): {401, 404, 422, 503},
    # 400: a Last-Event-ID of the right shape beyond any stream id; 429: too many streams.
    ("get", "/v1/turns/{turn_id}/events"): {400, 401, 404, 422, 429, 503},
    ("post", "/v1/sessions/{session_id}/turns/{turn_id}/cancel"): {
        401,
        404,
        409,
        422,
        502,
        503,
    },
    # 400: a body that is not JSON; 404: another's session or a call not waiting; 409:
    # decided otherwise already, or the turn moved on.
    ("post", "/v1/sessions/{session_id}/turns/{turn_id}/approvals/{call_id}"): {
        400,
        401,
        404,
        409,
        422,
        502,
        503,
    },
    ("get", "/v1/sessions/{session_id}/approvals"): {401, 404, 422, 503},
    # 404: another's session, or a turn that is not an assistant turn of this session.
    ("put", "/v1/sessions/{session_id}/turns/{turn_id}/feedback"): {
        400,
        401,
        404,
        413,
        422,
        503,
    },
    ("delete", "/v1/sessions/{session_id}/turns/{turn_id}/feedback"): {401, 404, 422, 503},
    # 409: not the session's latest answered turn (or a person has the session).
    ("post", "/v1/sessions/{session_id}/turns/{turn_id}/regenerate"): {
        400,
        401,
        404,
        409,
        413,
        422,
        429,
        502,
        503,
    },
    ("get", "/v1/sessions/{session_id}/turns/{turn_id}/versions"): {401, 404, 422, 503},
    ("put", "/v1/sessions/{session_id}/turns/{turn_id}/version"): {
        400,
        401,
        404,
        409,
        413,
        422,
        502,
        503,
    },
    # 409: the branch's id is taken, or the session limit is reached.
    ("post", "/v1/sessions/{session_id}/turns/{turn_id}/branch"): {
        400,
        401,
        404,
        409,
        413,
        422,
        429,
        502,
        503,
    },
    ("get", "/v1/sessions/{session_id}/branches"): {401, 404, 422, 503},
    ("get", "/v1/me"): {401},
    ("get", "/v1/me/usage"): {401, 503},
    ("get", "/v1/sessions/{session_id}/artifacts"): {401, 404, 422, 503},
    ("get", "/v1/artifacts/{artifact_id}"): {401, 404, 422, 503},
    ("post", "/v1/sessions/{session_id}/handoff"): {400, 401, 404, 409, 422, 503},
    ("get", "/v1/handoffs"): {401, 403, 503},
    ("post", "/v1/sessions/{session_id}/handoff/ticket"): {400, 401, 404, 409, 422, 503},
    ("get", "/v1/admin/overview"): {401, 403, 422, 503},
    ("get", "/v1/sessions/{session_id}/feed"): {400, 401, 404, 422, 429, 503},
    ("post", "/v1/handoffs/{session_id}/claim"): {401, 403, 404, 409, 422, 503},
    ("get", "/v1/handoffs/{session_id}/messages"): {401, 403, 404, 422, 503},
    ("post", "/v1/handoffs/{session_id}/messages"): {400, 401, 403, 404, 409, 422, 503},
    ("post", "/v1/handoffs/{session_id}/release"): {400, 401, 403, 404, 409, 422, 503},
    ("get", "/health"): set(),
    ("get", "/ready"): {503},
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(load_settings(jwt_secret="s" * 32)).openapi()


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op for path, item in spec["paths"].items() for method, op in item.items()
    }


def _parameter(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"].lower() == name.lower())


def test_bearer_auth_is_declared_and_required_on_every_v1_route(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {
        "BearerJWT": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": schemes["BearerJWT"]["description"],
        }
    }
    for (method, path), op in _operations(spec).items():
        if path.startswith("/v1/"):
            assert op.get("security") == [{"BearerJWT": []}], (method, path)
        else:
            # Health answers anyone; a valid token adds each dependency's details.
            assert op.get("security") in (None, [{"BearerJWT": []}, {}]), (method, path)


def test_every_route_documents_the_error_statuses_it_can_answer(spec: dict[str, Any]) -> None:
    ops = _operations(spec)
    assert set(ops) == set(EXPECTED_ERRORS)
    for key, op in ops.items():
        documented = {int(code) for code in op["responses"] if int(code) >= 400}
        assert documented == EXPECTED_ERRORS[key], key
        if key == ("get", "/ready"):
            continue  # its 503 is the health report itself
        for code in documented:
            body = op["responses"][str(code)]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}, (key, code)


def test_cursor_and_last_event_id_carry_the_pattern_the_server_enforces(
    spec: dict[str, Any],
) -> None:
    ops = _operations(spec)
    # Optional, but never null: a query or header is absent or a string.
    cursor = _parameter(ops[("get", "/v1/sessions")], "cursor")["schema"]
    assert cursor["type"] == "string"
    assert re.match(cursor["pattern"], "MjAyNi0xMS0yM1QxMDowMDowMCswMDowMHxzMQ==")
    for bad in ("not base64!", "0", "abc=="):
        assert not re.match(cursor["pattern"], bad), bad
    last = _parameter(ops[("get", "/v1/turns/{turn_id}/events")], "last-event-id")["schema"]
    assert last == {
        "type": "string",
        "pattern": r"^\d{1,19}-\d{1,19}$",  # every id it allows fits Redis's 64 bits
        "title": last["title"],
        "description": last["description"],
    }
    before = _parameter(ops[("get", "/v1/sessions/{session_id}/messages")], "before")["schema"]
    assert before["type"] == "integer"
