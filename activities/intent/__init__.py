"""Intent detection: which tool a message needs (company search, web search, both, or
none), with a confidence and, for searches, the query and location filter.

Layers (`router.py`): rules that cannot be wrong (`rules.py`), a learned classifier
(`classifier.py`: a shipped pure-Python model, or MiniLM embeddings with the `ml` extra),
and, when a real chat model is configured and the classifier is unsure, a structured-output
LLM call (`llm_fallback.py`). `chatbot route` (`cli.py`) runs it on JSON lines and scores
it on a labelled set (`eval.jsonl`) beside the old keyword list (`baseline.py`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity

from activities.intent.person import asks_for_person
from activities.intent.router import Decision, Router, build_router
from activities.sql.questions import asks_data, terms_of
from shared.models import DetectIntentInput, IntentResult
from shared.usage import Step, UsageLedger

if TYPE_CHECKING:
    from activities.sql.tool import DataTool

log = logging.getLogger(__name__)

__all__ = ["Decision", "IntentActivities", "Router", "build_router"]


class IntentActivities:
    """The worker builds one Router (loading its model once) and hands it in."""

    def __init__(
        self,
        router: Router | None = None,
        ledger: UsageLedger | None = None,
        *,
        unanswerable_data: DataTool | None = None,
    ) -> None:
        """`unanswerable_data`: a database no turn here can query (no tool-calling model):
        questions about what it holds are flagged (`data_question`) for a plain reply."""
        self._router = router if router is not None else Router()
        self._ledger = ledger  # where the LLM layer's tokens are recorded, under the turn
        self._data = unanswerable_data

    @property
    def router(self) -> Router:
        return self._router

    @activity.defn
    async def detect_intent(self, req: DetectIntentInput) -> IntentResult:
        decision = await self._router.adecide(req.text)
        used, llm = decision.usage, self._router.llm
        if self._ledger is not None and req.turn_id and used is not None and llm is not None:
            step = Step(req.turn_id, "intent", req.user_id, req.session_id, llm.model)
            await self._ledger.record(step, used)
        flags: dict[str, bool] = {}
        if asks_for_person(req.text):
            flags["wants_person"] = True
        elif self._data is not None and await self._asks_data(req.text):
            flags["data_question"] = True
        return decision.result.model_copy(update=flags) if flags else decision.result

    async def _asks_data(self, text: str) -> bool:
        assert self._data is not None
        try:
            catalog = await self._data.catalog()
        except (SQLAlchemyError, OSError) as err:  # the data database is away: no flag
            log.warning("data catalog unreadable, data questions not recognised: %s", err)
            return False
        return asks_data(text, terms_of(catalog, sample=self._data.sample))
