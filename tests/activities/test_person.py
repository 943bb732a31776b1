"""Asking for a person in so many words, in English and Spanish, and nothing else: no
routing example or eval query counts (they are questions for the assistant)."""

from __future__ import annotations

import pytest

from activities.intent import linear
from activities.intent.person import asks_for_person


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Can I talk to a human?", True),
        ("I want to speak with a real person", True),
        ("connect me with an agent please", True),
        ("I need a human", True),
        ("transfer me to customer service", True),
        ("¿Puedo hablar con un agente?", True),
        ("pasame con un humano", True),  # typed without accents
        ("Find a staffing agency in Ohio", False),
        ("Who is the best person to ask about PCB assembly?", False),
        ("news about real estate agents", False),
        ("talk to me about agents in AI", False),
        ("I want an agent that writes code", False),
    ],
)
def test_asking_for_a_person_is_recognised(text: str, asks: bool) -> None:
    assert asks_for_person(text) is asks


def test_no_routing_example_or_eval_query_asks_for_a_person() -> None:
    texts = [
        e.text for e in linear.load_examples() + linear.load_examples(linear.HERE / "eval.jsonl")
    ]
    assert len(texts) > 2000
    assert [t for t in texts if asks_for_person(t)] == []
