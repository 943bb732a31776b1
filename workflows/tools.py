"""The tools step of a turn: which tools an intent needs, running them in parallel with a
deadline each, and the grounding text the reply is generated from. Deterministic."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.company_search import CompanySearch
    from activities.web_search import NOT_CONFIGURED, WebSearch
    from shared.language import looks_spanish
    from shared.models import IntentResult
    from shared.tools import (
        Citation,
        CompanyResults,
        SearchCompaniesInput,
        SearchWebInput,
        WebResults,
    )
    from workflows import policies


@dataclass
class ToolOutcome:
    companies: CompanyResults | None = None
    web: WebResults | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def results(self) -> list[dict[str, Any]]:
        return [r.model_dump(mode="json") for r in (self.companies, self.web) if r is not None]

    @property
    def citations(self) -> list[Citation]:
        return self.web.citations if self.web else []


async def _timed(name: str, call: Awaitable[Any], timings: dict[str, float]) -> Any:
    started = workflow.time()
    try:
        return await call
    finally:
        timings[name] = (workflow.time() - started) * 1000


def _failure(err: BaseException) -> str:
    """The root cause's message (the activity's ApplicationError), not Temporal's wrapper."""
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    return str(cause) or type(cause).__name__


async def run_tools(
    intent: IntentResult, text: str, *, turn_id: str, session_id: str, user_id: str
) -> ToolOutcome:
    """Company search and/or web search as the intent needs, in parallel."""
    outcome = ToolOutcome()
    query = intent.query or text
    calls: dict[str, Awaitable[Any]] = {}
    if intent.intent in ("company_search", "both"):
        where = f" in {intent.location}" if intent.location else ""
        calls["company_search"] = workflow.execute_activity_method(
            CompanySearch.search_companies,
            SearchCompaniesInput(query=query, location=intent.location),
            start_to_close_timeout=policies.TOOL_TIMEOUT,
            retry_policy=policies.TOOL_RETRY,
            summary=f"company search: “{query[:60]}”{where}",
        )
    if intent.intent in ("web_search", "both"):
        calls["web_search"] = workflow.execute_activity_method(
            WebSearch.search_web,
            SearchWebInput(
                query=intent.web_query or query,
                turn_id=turn_id,
                session_id=session_id,
                user_id=user_id,
            ),
            start_to_close_timeout=policies.TOOL_TIMEOUT,
            retry_policy=policies.TOOL_RETRY,
            summary=f"web search: “{query[:60]}”",
        )
    results = await asyncio.gather(
        *(_timed(name, call, outcome.timings_ms) for name, call in calls.items()),
        return_exceptions=True,
    )
    for name, result in zip(calls, results, strict=True):
        if isinstance(result, BaseException):
            message = f"{name.replace('_', ' ')} is unavailable right now: {_failure(result)}"
            result = (
                CompanyResults(unavailable=True, message=message)
                if name == "company_search"
                else WebResults(unavailable=True, message=message)
            )
        if isinstance(result, CompanyResults):
            outcome.companies = result
        elif isinstance(result, WebResults):
            outcome.web = result
    return outcome


DATA_TIMINGS = ("sql_ms", "sql_attempts", "chart_ms")


def data_timings(tool_results: list[dict[str, Any]]) -> dict[str, float]:
    """The query_data calls' steps (SQL time and attempts, chart time), summed over the
    turn's calls, for the TurnResult's timings."""
    found: dict[str, float] = {}
    for r in tool_results:
        if r.get("tool") == "query_data":
            for key in DATA_TIMINGS:
                if isinstance(r.get(key), int | float):
                    found[key] = found.get(key, 0) + r[key]
    return found


ROUTER_HINTS = {
    "company_search": "search_companies",
    "web_search": "search_web",
    "both": "search_companies and search_web",
}


def router_hint(intent: IntentResult) -> str:
    """For a tool-calling turn: what the offline router would have searched, as a hint."""
    tools = ROUTER_HINTS.get(intent.intent)
    return f"This message probably needs {tools}." if tools else ""


def grounding(outcome: ToolOutcome) -> str:
    """What the model is told about the tools' results, for a grounded, cited answer."""
    parts: list[str] = []
    if outcome.companies is not None:
        found = outcome.companies
        if found.unavailable:
            parts.append(f"Company search failed: {found.message}. Say so plainly.")
        elif not found.companies:
            parts.append("Company search found no matching companies. Say so plainly.")
        else:
            every = all(c.sample for c in found.companies)
            label = " (SAMPLE DATA: fictional demo companies; say so)" if every else ""
            lines = [f"Company search results{label}:"]
            for c in found.companies:
                mark = " [SAMPLE DATA: fictional]" if c.sample and not every else ""
                lines.append(
                    f"- {c.name}{mark} ({c.industry}, {c.location}): {c.description} "
                    f"Capabilities: {c.capabilities}. Contact: {c.contact}"
                )
            parts.append("\n".join(lines))
    if outcome.web is not None:
        web = outcome.web
        if web.unavailable:
            parts.append(
                f"{web.message} Tell the user plainly; never invent current facts, prices or news."
            )
        else:
            sources = "\n".join(f"[{c.index}] {c.title} {c.url}" for c in web.citations)
            parts.append(f"Web search answer:\n{web.answer}\nSources:\n{sources}")
    if outcome.web is not None and outcome.web.citations:
        parts.append("Answer from these results only; cite web sources as [n] with their numbers.")
    elif outcome.companies is not None and outcome.companies.companies:
        parts.append("Answer from these results only: name the companies that fit and why.")
    return "\n\n".join(parts)


def fixed_reply(
    intent: IntentResult, outcome: ToolOutcome, text: str, *, templated: bool = False
) -> str | None:
    """The reply when the one tool a question needed found nothing or could not run: said
    plainly in the user's language, with nothing invented, and no model asked (small
    models asked anyway make up news and companies). `templated` (TOOL_REPLIES): found
    companies get a fixed lead-in too, the results themselves being the turn's findings.
    None when a model should answer."""
    lang = "es" if looks_spanish(text) else "en"
    if intent.data_question:  # the data database holds the answer and nothing here can ask it
        return NO_DATA_MODEL_REPLY[lang]
    if intent.confidence < FIXED_REPLY_CONFIDENCE:
        return None  # perhaps not a search at all: the model answers, told what failed
    web, companies = outcome.web, outcome.companies
    if templated and companies is not None and companies.companies:
        return _found_reply(intent, companies, web, lang)
    if intent.intent == "web_search" and web is not None and web.unavailable:
        return NO_WEB_REPLY[lang] if web.message == NOT_CONFIGURED else FAILED_REPLY[lang]
    if intent.intent == "company_search" and companies is not None:
        if companies.unavailable:
            return FAILED_REPLY[lang]
        if not companies.companies:
            return NO_COMPANIES_REPLY[lang]
    return None


def _found_reply(
    intent: IntentResult, companies: CompanyResults, web: WebResults | None, lang: str
) -> str:
    """ "I found 2 companies for “software” in Texas ...": what was searched and what came
    back, above the findings (which list each company with its details)."""
    n, words = len(companies.companies), FOUND_REPLY[lang]
    said = words["found"].format(
        n=n,
        what=words["one"] if n == 1 else words["many"],
        query=(intent.query or "").strip(" .?!¿¡"),
    )
    if intent.location:
        said += words["in"].format(where=intent.location)
    said += words["listed"]
    if all(c.sample for c in companies.companies):
        said += words["sample"]
    said += words["unjudged"]
    if web is not None and web.unavailable:
        said += " " + (NO_WEB_NEWS[lang] if web.message == NOT_CONFIGURED else FAILED_WEB[lang])
    return said


FOUND_REPLY = {
    "en": {
        "found": "I found {n} {what} for “{query}”",
        "one": "company",
        "many": "companies",
        "in": " in {where}",
        "listed": ". They are listed below with what they do, where they are and how to reach them",
        "sample": "; they are sample data (fictional demo companies)",
        "unjudged": ". Check which fit: I haven't judged them.",
    },
    "es": {
        "found": "He encontrado {n} {what} para «{query}»",
        "one": "empresa",
        "many": "empresas",
        "in": " en {where}",
        "listed": ". Están abajo, con lo que hacen, dónde están y cómo contactarlas",
        "sample": "; son datos de ejemplo (empresas ficticias de demostración)",
        "unjudged": ". Comprueba cuáles encajan: no las he valorado.",
    },
}
NO_WEB_NEWS = {
    "en": "Real-time web search is not configured here, so I can't add current news about them.",
    "es": "La búsqueda web en tiempo real no está configurada, así que no puedo añadir noticias.",
}
FAILED_WEB = {
    "en": "The web search failed just now, so there is no current news about them.",
    "es": "La búsqueda web ha fallado ahora, así que no hay noticias actuales sobre ellas.",
}
# Below this the router is unsure the message is a search at all (a misrouted "once" came
# in at 0.49): a fixed "I can't look that up" would then answer the wrong question.
FIXED_REPLY_CONFIDENCE = 0.6


NO_WEB_REPLY = {
    "en": (
        "I can't look that up: real-time web search is not configured on this service, "
        "so I have no current news, prices or events to give you, and I won't guess them."
    ),
    "es": (
        "No puedo buscarlo: la búsqueda web en tiempo real no está configurada en este "
        "servicio, así que no tengo noticias, precios ni datos actuales, y no voy a inventarlos."
    ),
}
NO_COMPANIES_REPLY = {
    "en": (
        "I found no matching companies in the company directory. Try other words for what "
        "they do, or a wider area."
    ),
    "es": (
        "No he encontrado empresas que encajen en el directorio. Prueba con otras palabras "
        "para lo que hacen, o con una zona más amplia."
    ),
}
# Why it failed is in the turn's findings (the provider's words, in English).
HANDOFF_REPLY = {
    "en": (
        "I've asked a person from the team to take over this chat; the assistant is paused "
        "until they hand it back. Your messages reach them here."
    ),
    "es": (
        "He pedido a una persona del equipo que se ocupe de esta conversación; el asistente "
        "queda en pausa hasta que la devuelva. Tus mensajes le llegan aquí."
    ),
}


def handoff_reply(text: str) -> str:
    """The reply to a message asking for a person, in its language."""
    return HANDOFF_REPLY["es" if looks_spanish(text) else "en"]


NO_DATA_MODEL_REPLY = {
    "en": (
        "I can't answer questions about the data here: that needs a chat model that can "
        "call tools, to write the database query, and this service runs without one. Ask "
        "whoever runs it to configure one (OPENAI_API_KEY, with TOOL_CALLING on or auto); "
        "I won't guess the numbers."
    ),
    "es": (
        "No puedo responder preguntas sobre los datos aquí: hace falta un modelo de chat "
        "que pueda llamar a herramientas, para escribir la consulta a la base de datos, y "
        "este servicio funciona sin él. Pide a quien lo administra que configure uno "
        "(OPENAI_API_KEY, con TOOL_CALLING en on o auto); no voy a inventar las cifras."
    ),
}
FAILED_REPLY = {
    "en": "I couldn't look that up just now; the search failed. Please try again in a moment.",
    "es": "No he podido buscarlo ahora: la búsqueda ha fallado. Inténtalo de nuevo en un momento.",
}
