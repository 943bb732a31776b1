"""The eval's cases (cases.jsonl) and the prompt each becomes: the workflow's system
prompt, its grounding of tool results built from the sample companies, and
activities.prompt's assembly, so a model is judged on exactly what the service sends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activities.prompt import assemble, token_counter
from activities.web_search import NOT_CONFIGURED
from chatbot.companies import SAMPLE_FILE
from shared.models import ChatMessage, IntentResult, PromptParts
from shared.tools import Citation, Company, CompanyResults, WebResults
from workflows.chat_session import SYSTEM_PROMPT
from workflows.tools import ToolOutcome, grounding

CASES_FILE = Path(__file__).with_name("cases.jsonl")

LONG_TEXTS = {
    "LONG_MEETING_NOTES": (
        "Here are my notes from this morning's operations meeting; please summarise them "
        "in three bullet points. "
        + " ".join(
            [
                "We reviewed the quarter's shipping volumes, which grew steadily in every "
                "region except the north-east, where two carriers cancelled contracts.",
                "The main decision was to open a second warehouse in Denver by the end of "
                "the spring, so orders to the mountain states ship in two days instead of "
                "five.",
                "Facilities estimated the fit-out at eleven weeks once the lease is signed, "
                "and asked for a forklift budget to be approved at the next meeting.",
                "Customer support reported that late-delivery complaints fell after the "
                "new tracking emails went out, but refund requests for damaged parcels "
                "rose, mostly from one packaging line.",
                "Quality agreed to audit that line and to trial thicker cartons for fragile items.",
                "Finance reminded everyone that travel must be booked through the new "
                "portal from next month, and that receipts older than sixty days will not "
                "be reimbursed.",
            ]
            * 4
        )
    ),
    "LONG_SUPPLIER_BRIEF": (
        "We are a small medical-device start-up and we need a partner for our first "
        "production run. "
        + " ".join(
            [
                "The product is a handheld sensor with a four-layer printed circuit board, "
                "about forty components per board, and a plastic enclosure we already "
                "source elsewhere.",
                "We need two hundred prototype boards in the first batch and then roughly "
                "two thousand a quarter if the pilot goes well.",
                "Lead time matters more than unit price for the prototypes, and we would "
                "prefer a supplier in the eastern half of the country so our engineers "
                "can visit.",
            ]
            * 5
        )
        + " Which of the suppliers you know would fit, and why?"
    ),
}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    message: str
    expect: dict[str, Any]
    history: list[ChatMessage] = field(default_factory=list)
    tools: ToolOutcome = field(default_factory=ToolOutcome)

    @property
    def intent(self) -> IntentResult:
        """The intent that runs these tools, as the router would have labelled it."""
        companies, web = self.tools.companies is not None, self.tools.web is not None
        label = {(True, True): "both", (True, False): "company_search"}.get(
            (companies, web), "web_search" if web else "chat"
        )
        return IntentResult(intent=label, confidence=1.0)


def _sample_companies() -> dict[str, Company]:
    out: dict[str, Company] = {}
    for line in SAMPLE_FILE.read_text().splitlines():
        row = json.loads(line)
        row["capabilities"] = ", ".join(row.get("capabilities", []))
        out[row["name"]] = Company(**row, score=0.8, sample=True)
    return out


def _tools(raw: dict[str, Any], companies: dict[str, Company]) -> ToolOutcome:
    outcome = ToolOutcome()
    if "companies" in raw:
        found = [companies[name] for name in raw["companies"]]
        outcome.companies = CompanyResults(companies=found, sample=True, mode="hybrid")
    web = raw.get("web")
    if web == "unconfigured":
        outcome.web = WebResults(unavailable=True, message=NOT_CONFIGURED)
    elif isinstance(web, dict):
        citations = [
            Citation(index=i, title=title, url=url)
            for i, (title, url) in enumerate(web["sources"], 1)
        ]
        outcome.web = WebResults(answer=web["answer"], citations=citations)
    return outcome


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    companies = _sample_companies()
    cases = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        cases.append(
            Case(
                id=raw["id"],
                kind=raw["kind"],
                message=LONG_TEXTS.get(raw["message"], raw["message"]),
                expect=raw.get("expect", {}),
                history=[ChatMessage(role=r, content=c) for r, c in raw.get("history", [])],
                tools=_tools(raw, companies),
            )
        )
    return cases


def prompt(case: Case, *, budget: int, model: str) -> list[dict[str, str]]:
    parts = PromptParts(
        system=SYSTEM_PROMPT,
        recent=case.history,
        tool_context=grounding(case.tools),
        user=case.message,
    )
    messages, _ = assemble(parts, budget, token_counter(model))
    return [m.model_dump() for m in messages]
