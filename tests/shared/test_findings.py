"""What the tools found, rendered the same way whatever the model replied; and the fixed
reply to a question only the web could answer."""

from __future__ import annotations

from activities.web_search import NOT_CONFIGURED
from shared.findings import in_context, render
from shared.language import looks_spanish
from shared.models import IntentResult
from shared.tools import Citation, Company, CompanyResults, WebResults
from workflows.tools import ToolOutcome, fixed_reply


def _companies(*names: str, sample: bool = False) -> dict[str, object]:
    found = [
        Company(
            name=n,
            industry="Cloud",
            location="Austin, TX",
            capabilities="hosting",
            score=0.5,
            sample=sample and not n.startswith("Real"),  # "Real …" rows were imported
        )
        for n in names
    ]
    return CompanyResults(companies=found, sample=any(c.sample for c in found)).model_dump(
        mode="json"
    )


def test_companies_are_numbered_with_their_key_fields() -> None:
    assert render([_companies("Acme Cloud", "Brio Hosting", sample=True)]).splitlines() == [
        "Companies found (sample data):",
        "  1. Acme Cloud (Cloud · Austin, TX), match 0.50",
        "     capabilities: hosting",
        "  2. Brio Hosting (Cloud · Austin, TX), match 0.50",
        "     capabilities: hosting",
    ]


def test_the_sample_label_is_on_sample_rows_only() -> None:
    mixed = render([_companies("Real Co", "Sample Co", sample=True)]).splitlines()
    assert mixed[0] == "Companies found:"
    assert mixed[1] == "  1. Real Co (Cloud · Austin, TX), match 0.50"
    assert mixed[3] == "  2. Sample Co (Cloud · Austin, TX), match 0.50 [sample data]"
    # A turn stored before rows had their own flag: the result's says it for all.
    old = {"tool": "company_search", "sample": True, "companies": [{"name": "Acme"}]}
    assert render([old]).splitlines()[0] == "Companies found (sample data):"


def test_no_match_unavailable_and_sources_are_said_plainly() -> None:
    none = CompanyResults().model_dump(mode="json")
    web = WebResults(unavailable=True, message="not configured here").model_dump(mode="json")
    assert render([none, web]).splitlines() == [
        "Company search found no matching companies.",
        "Web search is unavailable: not configured here",
    ]
    cited = [Citation(index=1, title="Fed holds", url="https://x.example/a").model_dump()]
    assert render([], cited) == "Sources:\n  [1] Fed holds <https://x.example/a>"


def test_nothing_found_renders_nothing_and_hostile_shapes_are_skipped() -> None:
    assert render([]) == ""
    assert in_context("hi", "") == "hi"
    # A stored turn from an older or foreign writer: wrong types are ignored, not raised.
    assert render("oops", 3) == ""
    assert render([{"tool": "company_search", "companies": [{"name": 7, "score": True}]}]) == (
        "Companies found:\n  1. (no name)"
    )


def test_spanish_is_recognised_and_english_is_not() -> None:
    assert looks_spanish("¿Cuáles son las últimas noticias?")
    assert looks_spanish("dime las noticias de hoy sobre la bolsa")
    assert not looks_spanish("What is the latest news on the bond market today?")
    assert not looks_spanish("la la land reviews")
    assert not looks_spanish("Find PCB assembly in El Paso or Los Angeles, LA")


def _web_outcome(message: str) -> ToolOutcome:
    return ToolOutcome(web=WebResults(unavailable=True, message=message))


def test_a_web_only_question_without_web_search_gets_a_fixed_reply_in_kind() -> None:
    web = IntentResult(intent="web_search", confidence=0.9)
    english = fixed_reply(web, _web_outcome(NOT_CONFIGURED), "latest AI news?")
    assert english is not None and "not configured" in english
    spanish = fixed_reply(web, _web_outcome(NOT_CONFIGURED), "¿Qué noticias hay hoy?")
    assert spanish is not None and spanish.startswith("No puedo buscarlo")
    failed = fixed_reply(web, _web_outcome("web search is unavailable right now: 503"), "news?")
    assert (
        failed
        == "I couldn't look that up just now; the search failed. Please try again in a moment."
    )
    # Unsure it is a search at all: the model answers (it is told what failed).
    unsure = IntentResult(intent="web_search", confidence=0.49)
    assert fixed_reply(unsure, _web_outcome(NOT_CONFIGURED), "once") is None


def test_a_model_answers_when_something_else_can_be_said() -> None:
    both = IntentResult(intent="both", confidence=0.9)
    assert fixed_reply(both, _web_outcome(NOT_CONFIGURED), "suppliers and their news") is None
    web = IntentResult(intent="web_search", confidence=0.9)
    assert fixed_reply(web, ToolOutcome(web=WebResults(answer="ok")), "news?") is None


def test_a_company_search_that_found_nothing_or_failed_gets_a_fixed_reply() -> None:
    search = IntentResult(intent="company_search", confidence=0.9)
    nothing = ToolOutcome(companies=CompanyResults())
    assert fixed_reply(search, nothing, "rocket engines in Vermont") == (
        "I found no matching companies in the company directory. Try other words for what "
        "they do, or a wider area."
    )
    spanish = fixed_reply(search, nothing, "¿Hay empresas de cohetes?") or ""
    assert spanish.startswith("No he encontrado")
    failed = ToolOutcome(companies=CompanyResults(unavailable=True, message="Databricks said 401"))
    assert (fixed_reply(search, failed, "find welders") or "").startswith("I couldn't look")
    found = ToolOutcome(companies=CompanyResults(companies=[Company(name="Acme")]))
    assert fixed_reply(search, found, "find welders") is None
