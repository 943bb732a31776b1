"""Personal data found in text and replaced by placeholders ([EMAIL_1], [CARD_1], ...),
reversibly: the mapping restores the originals in what the model wrote back.

Candidates are found by patterns, then checked by python-stdnum (maintained validators of
card numbers' Luhn digit, IBANs' mod-97 and national ids' own check digits), so a random
run of digits is not taken for a card. Presidio would detect more kinds (names,
addresses) but brings spaCy and a language model of hundreds of MB; it does not fit an
install that must stay small, and these kinds are the ones with a checkable shape.

Phone numbers are those written as phone numbers: a leading `+` and 9 to 15 digits, or
10 to 15 digits in groups of 2 to 4 split by spaces, dashes, dots or parentheses; a bare
run of digits is not one (an order number), nor an ISBN or a date."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from stdnum import iban, luhn
from stdnum.es import dni, nie
from stdnum.us import ssn

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}"  # international: +34 612 345 678
    r"|\(?\d{2,4}\)?(?:[ .-]\d{2,4}){2,4})(?![\w-])"  # grouped: (555) 123-4567, 020 7946 0958
)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone(candidate: str) -> bool:
    # With a country code 9 digits may be a whole number; without one, 10 at least
    # (fewer are more often dates, codes and ids than phone numbers).
    least = 9 if candidate.startswith("+") else 10
    return least <= len(_digits(candidate)) <= 15


def _card(candidate: str) -> bool:
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


# National ids: a pattern and the validator of its check digits (PII_NATIONAL_IDS).
NATIONAL_IDS: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "us_ssn": (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), ssn.is_valid),
    "es_dni": (re.compile(r"\b\d{8}-?[A-Za-z]\b"), dni.is_valid),
    "es_nie": (re.compile(r"\b[XYZxyz]-?\d{7}-?[A-Za-z]\b"), nie.is_valid),
}
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CARD|IBAN|ID)_\d+\]")


@dataclass
class Redaction:
    """Originals by placeholder, and placeholders by original (one per distinct value)."""

    originals: dict[str, str] = field(default_factory=dict)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._by_value:
            count = sum(1 for k, _ in self._by_value if k == kind) + 1
            name = f"[{kind}_{count}]"
            self._by_value[key] = name
            self.originals[name] = value
        return self._by_value[key]

    def restore(self, text: str) -> str:
        if not self.originals:
            return text
        return _PLACEHOLDER.sub(lambda m: self.originals.get(m.group(0), m.group(0)), text)


class PiiRedactor:
    def __init__(self, national_ids: Iterable[str] = ()) -> None:
        self._detectors: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
            ("EMAIL", _EMAIL, lambda _: True),
            ("IBAN", _IBAN, lambda c: iban.is_valid(c)),
            ("CARD", _CARD, _card),
            *(("ID", *NATIONAL_IDS[name]) for name in national_ids),
            ("PHONE", _PHONE, _phone),
        ]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, kind) of each finding, in order, none overlapping (earlier
        detectors win: an IBAN's digits are not also a phone number)."""
        taken: list[tuple[int, int, str]] = []
        for kind, pattern, valid in self._detectors:
            for m in pattern.finditer(text):
                start, end = m.span()
                if any(s < end and start < e for s, e, _ in taken) or not valid(m.group(0)):
                    continue
                taken.append((start, end, kind))
        return sorted(taken)

    def redact(self, text: str, redaction: Redaction | None = None) -> str:
        found = self.find(text)
        if not found:
            return text
        into = redaction if redaction is not None else Redaction()
        parts, last = [], 0
        for start, end, kind in found:
            parts += [text[last:start], into.placeholder(kind, text[start:end])]
            last = end
        parts.append(text[last:])
        return "".join(parts)


class StreamRestorer:
    """Restores placeholders in a reply as it streams: a chunk that ends inside what may
    be a placeholder is held back until the next chunk completes it."""

    MAX_HELD = 16  # longer than any placeholder: a `[` this far back is not one

    def __init__(self, redaction: Redaction) -> None:
        self._redaction = redaction
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut < self.MAX_HELD:
            text, self._held = text[:cut], text[cut:]
        else:
            self._held = ""
        return self._redaction.restore(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._redaction.restore(held)
