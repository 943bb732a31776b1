"""Real-time web search through an OpenAI search model (chat completions with
`web_search_options`); its `url_citation` annotations become numbered citations."""

from __future__ import annotations

import openai
from openai import AsyncOpenAI
from temporalio import activity

from activities.embeddings import openai_failed
from activities.llm import provider_error
from shared.breaker import Breaker, ProviderUnavailable, guarded, unavailable_error
from shared.config import Settings
from shared.pii import Redaction
from shared.tools import Citation, SearchWebInput, WebResults
from shared.usage import Step, UsageLedger, reported_usage

NOT_CONFIGURED = (
    "Real-time web search is not configured here (it needs OPENAI_API_KEY and a search "
    "model), so current events, prices and news cannot be looked up."
)


class WebSearch:
    def __init__(
        self,
        client: AsyncOpenAI | None,
        settings: Settings,
        breaker: Breaker | None = None,
        ledger: UsageLedger | None = None,
    ) -> None:
        # Only a real OpenAI key reaches the search model; a local model cannot search.
        self._client = client if settings.openai_api_key is not None else None
        self._model = settings.openai_search_model
        self._breaker = breaker
        self._pii = settings.pii_in_prompts  # logs+prompts: the query's personal data kept here
        self._ledger = ledger  # where each search's tokens are recorded, under its turn

    @activity.defn
    async def search_web(self, req: SearchWebInput) -> WebResults:
        if self._client is None:
            return WebResults(unavailable=True, message=NOT_CONFIGURED)
        redaction = Redaction()
        query = self._pii.redact(req.query, redaction) if self._pii else req.query
        try:
            async with guarded(self._breaker, openai_failed):
                completion = await self._client.chat.completions.create(
                    model=self._model,
                    messages=[{"role": "user", "content": query}],
                    web_search_options={},
                )
        except openai.APIError as err:
            raise provider_error(err) from err
        except ProviderUnavailable as err:
            raise unavailable_error(err) from None
        if self._ledger is not None and req.turn_id:
            step = Step(req.turn_id, req.step, req.user_id, req.session_id, self._model)
            await self._ledger.record(step, reported_usage(completion.usage))
        message = completion.choices[0].message if completion.choices else None
        raw = (message.content or "") if message else ""
        answer = redaction.restore(raw)
        citations: list[Citation] = []
        seen: dict[str, int] = {}
        for note in (message.annotations or []) if message else []:
            cite = note.url_citation
            if note.type != "url_citation" or cite is None or cite.url in seen:
                continue
            seen[cite.url] = len(citations) + 1
            # The offsets are into what the model wrote, placeholders and all.
            snippet = redaction.restore(raw[cite.start_index : cite.end_index].strip())
            citations.append(
                Citation(index=len(citations) + 1, title=cite.title, url=cite.url, snippet=snippet)
            )
        return WebResults(answer=answer, citations=citations)
