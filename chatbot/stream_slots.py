"""How many streams each user holds open on this gateway: one user's hundreds of open
streams must not take the connections everyone else's requests need."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from chatbot.errors import RateLimited

RETRY_AFTER_SECONDS = 5


class StreamSlots:
    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: Counter[str] = Counter()

    def check(self, user_id: str) -> None:
        """Refuse a new stream for a user who holds the most they may (429)."""
        if self._open[user_id] >= self.per_user:
            raise RateLimited(
                f"{self.per_user} streams are open for this user already; close one "
                "(or read the turn's result as JSON) and retry",
                retry_after=RETRY_AFTER_SECONDS,
            )

    @contextmanager
    def hold(self, user_id: str, *, enforce: bool = True) -> Iterator[None]:
        """Count a stream while it is open; `enforce=False` for one already admitted by
        `check` (its response has started: a refusal could no longer be an HTTP status)."""
        if enforce:
            self.check(user_id)
        self._open[user_id] += 1
        try:
            yield
        finally:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]
