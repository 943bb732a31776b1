"""Whether a message asks, in so many words, for a person instead of the assistant ("can I
talk to a human?", "connect me with an agent", "quiero hablar con una persona"): on the
router's path such a turn hands the session to a person (with a tool-calling model the
model decides, through escalate_to_human). Checked against every routing example and eval
query in the tests: none of them asks for one."""

from __future__ import annotations

import re

from shared.language import fold_accents

_PERSON = (
    r"(?:a |an |some |one |)(?:real |live |actual )?"
    r"(?:human(?: being)?|person|agent|representative|rep|operator|someone|somebody|staff|"
    r"support (?:agent|person|staff)|customer service(?: agent| representative)?)"
)
_ASKS = re.compile(
    r"\b(?:(?:talk|speak|chat) (?:to|with) " + _PERSON + r"|"
    r"(?:connect|transfer|put|pass|hand) me (?:to|over to|through to|with) " + _PERSON + r"|"
    r"(?:i )?(?:want|need|would like|d like) (?:to (?:talk|speak) (?:to|with) )?"
    + _PERSON
    + r"(?: please)?\s*[.!?]*$|"
    r"\b(?:human|live) (?:agent|support|operator)\b|"
    # Spanish, accents folded
    r"hablar con (?:una persona|un humano|un agente|alguien|un operador|soporte)|"
    r"(?:pasame|comunicame|ponme) con (?:una persona|un humano|un agente|alguien)|"
    r"(?:persona|agente) real\b)",
    re.I,
)


def asks_for_person(text: str) -> bool:
    return bool(_ASKS.search(fold_accents(text).lower().strip()))
