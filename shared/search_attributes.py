"""Custom search attributes of session workflows, so operators find a user's sessions in
the Temporal UI and CLI, e.g. `ChatUserId = "alice" AND ChatStatus = "active"`.

The embedded dev server registers them at start-up (`--search-attribute`); the worker
registers missing ones on a self-hosted cluster; on Temporal Cloud create them once:
`tcld namespace search-attributes add --namespace NS --search-attribute ChatUserId=Keyword ...`.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

USER_ID = SearchAttributeKey.for_keyword("ChatUserId")
STATUS = SearchAttributeKey.for_keyword("ChatStatus")  # active, idle or ended
LAST_INTENT = SearchAttributeKey.for_keyword("ChatLastIntent")
TURN_COUNT = SearchAttributeKey.for_int("ChatTurnCount")
LAST_ACTIVITY = SearchAttributeKey.for_datetime("ChatLastActivity")

ALL = (USER_ID, STATUS, LAST_INTENT, TURN_COUNT, LAST_ACTIVITY)

# The names the Temporal CLI and server flags use for each indexed value type.
_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "INT": "Int",
    "DATETIME": "Datetime",
}


def type_name(key: SearchAttributeKey) -> str:  # type: ignore[type-arg]
    return _TYPE_NAMES[key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")]


def dev_server_flags() -> list[str]:
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={type_name(key)}"]
    return flags
