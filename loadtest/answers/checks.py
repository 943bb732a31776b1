"""Objective checks of one reply: what it must mention, that it does not loop, its
language, its length, and that it invents no current facts. Each returns None or why it
failed, so a report can say what went wrong."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from shared.language import looks_spanish

Check = Callable[[str], str | None]
LOOP_NGRAM = 6  # words
LOOP_REPEATS = 3  # the same 6 words three times is a loop, not emphasis
DEFAULT_MAX_WORDS = 250

# What a reply that knows it has no current information says.
_ADMITS = re.compile(
    r"\b(can(?:no|')t|cannot|unable|not able|don't have|do not have|no access|not have access|"
    r"real[- ]time|not configured|not available|unavailable|as an ai|i don't know|"
    r"no puedo|no tengo|no dispongo|no está configurad|tiempo real)",
    re.IGNORECASE,
)
# The shapes invented current facts take: prices, percentages, temperatures, dates.
_CURRENT_FACT = re.compile(
    r"([$€£]\s?\d|\b\d[\d.,]*\s?(%|°|degrees|grados|usd|dollars|dólares|euros?\b)|"
    r"\b20[2-3]\d-\d\d|\b\d{1,2}\s+(de\s+)?(enero|febrero|marzo|abril|mayo|junio|julio|"
    r"agosto|septiembre|octubre|noviembre|diciembre|january|february|march|april|june|july|"
    r"august|september|october|november|december)\b|"
    r"\b(january|february|march|april|may|june|july|august|september|october|november|"
    r"december|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|"
    r"noviembre|diciembre)\s+\d)",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    return re.findall(r"[\w'\u2019.-]+", text.lower())


def loop(text: str) -> str | None:
    """The same LOOP_NGRAM words LOOP_REPEATS times or more: the model is repeating."""
    tokens = words(text)
    grams = Counter(tuple(tokens[i : i + LOOP_NGRAM]) for i in range(len(tokens) - LOOP_NGRAM + 1))
    gram, times = grams.most_common(1)[0] if grams else ((), 0)
    return f"repeats “{' '.join(gram)}” {times}x" if times >= LOOP_REPEATS else None


def _mentions(text: str, needle: str) -> bool:
    """As a whole word or phrase: "red" is not in "required", nor "42" in "1942"."""
    core = re.escape(needle.strip().lower())
    return re.search(rf"(?<!\w){core}(?!\w)", text.lower()) is not None


def checks_for(expect: Mapping[str, Any]) -> dict[str, Check]:
    """The checks a case's `expect` asks for, plus the ones every reply gets."""
    out: dict[str, Check] = {"no_loop": loop}
    low, high = int(expect.get("min_words", 1)), int(expect.get("max_words", DEFAULT_MAX_WORDS))

    def length(text: str) -> str | None:
        n = len(words(text))
        return None if low <= n <= high else f"{n} words, wanted {low}-{high}"

    out["length"] = length
    language = expect.get("language", "en")

    def in_language(text: str) -> str | None:
        spanish = looks_spanish(text)
        if (language == "es") == spanish:
            return None
        return f"answered in {'Spanish' if spanish else 'English'}, asked in {language}"

    out["language"] = in_language
    if expect.get("mention_all"):
        needles = list(expect["mention_all"])
        out["mentions"] = lambda text: (
            None
            if all(_mentions(text, n) for n in needles)
            else "missing " + ", ".join(n for n in needles if not _mentions(text, n))
        )
    if expect.get("mention_any"):
        options = list(expect["mention_any"])
        out["mentions_one"] = lambda text: (
            None if any(_mentions(text, n) for n in options) else f"none of {options}"
        )
    if expect.get("admits"):
        out["admits"] = lambda text: (
            None if _ADMITS.search(text) else "does not say it cannot know current facts"
        )
    if expect.get("no_current_facts"):

        def no_current_facts(text: str) -> str | None:
            found = _CURRENT_FACT.search(text)
            return f"states a current fact: “{found.group(0)}”" if found else None

        out["no_current_facts"] = no_current_facts
    return out


def score(text: str, expect: Mapping[str, Any]) -> dict[str, str | None]:
    """Each check's failure, or None where it passed."""
    plain = text.replace("\u2019", "'")  # a curly apostrophe reads as a straight one
    return {name: check(plain) for name, check in checks_for(expect).items()}
