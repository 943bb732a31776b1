"""PII detection and its reversal: each kind in a corpus is found (cards and ids only with
valid check digits), a set of ordinary messages is left alone (false positives are
counted and printed), and placeholders come back as the originals, in whole text and in a
stream that splits them across chunks."""

from __future__ import annotations

import pytest

from shared.pii import NATIONAL_IDS, PiiRedactor, Redaction, StreamRestorer

# Each message holds one value of its kind; the value is what must not survive.
CORPUS: list[tuple[str, str, str]] = [
    ("EMAIL", "write to maria.lopez+work@example.co.uk about it", "maria.lopez+work@example.co.uk"),
    ("EMAIL", "Contact: j_doe@sub.mail-host.org.", "j_doe@sub.mail-host.org"),
    ("PHONE", "call me on +34 612 345 678 tomorrow", "+34 612 345 678"),
    ("PHONE", "my number is (555) 123-4567", "(555) 123-4567"),
    ("PHONE", "office: 020 7946 0958", "020 7946 0958"),
    ("CARD", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("CARD", "use 5555-5555-5555-4444 please", "5555-5555-5555-4444"),
    ("CARD", "amex 378282246310005", "378282246310005"),
    ("IBAN", "IBAN DE89 3704 0044 0532 0130 00 for the refund", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "pay to GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("ID", "SSN 536-90-4399 on file", "536-90-4399"),
    ("ID", "mi DNI es 12345678Z", "12345678Z"),
    ("ID", "NIE X1234567L", "X1234567L"),
]

ORDINARY = [
    "How many machines need preventive maintenance this month?",
    "Order 1234567890123 shipped on 2026-12-04 at 10:30.",
    "The meeting is at 3 pm, room 4.12, building B.",
    "Our revenue grew 12.5% to $4,300,000 in Q3 2026.",
    "Version 1.35.0 fixed issue #14339 and #23323.",
    "Call the function with arguments (1, 2, 3) and 4-5-6.",
    "Tracking number 1Z999AA10123456784 arrives Tuesday.",
    "Find suppliers of PCB assembly in Ohio with ISO 9001.",
    "It costs 19.99 EUR, or 2 for 35.00 EUR.",
    "The card number 4111 1111 1111 1112 failed the check.",  # not Luhn-valid
    "SSN 000-12-3456 is not a valid number.",  # never issued
    "¿Cuántas órdenes de trabajo hay abiertas en la planta 3?",
    "Latitude 40.4168, longitude -3.7038.",
    "ISBN 978-3-16-148410-0 is the book's number.",
    "Ticket ABC-123-456 was closed.",
]


@pytest.fixture
def pii() -> PiiRedactor:
    return PiiRedactor(NATIONAL_IDS)


@pytest.mark.parametrize(("kind", "text", "value"), CORPUS)
def test_each_kind_is_found_and_replaced(
    pii: PiiRedactor, kind: str, text: str, value: str
) -> None:
    redaction = Redaction()
    out = pii.redact(text, redaction)
    assert value not in out and f"[{kind}_1]" in out, out
    assert redaction.originals == {f"[{kind}_1]": value}
    assert redaction.restore(out) == text


def test_ordinary_messages_are_left_alone(pii: PiiRedactor) -> None:
    flagged = [(t, pii.find(t)) for t in ORDINARY if pii.find(t)]
    print(f"\nfalse positives: {len(flagged)} of {len(ORDINARY)} ordinary messages: {flagged}")
    assert flagged == []


def test_national_ids_are_only_those_configured() -> None:
    assert PiiRedactor().redact("SSN 536-90-4399") == "SSN 536-90-4399"
    assert PiiRedactor(["us_ssn"]).redact("SSN 536-90-4399, DNI 12345678Z") == (
        "SSN [ID_1], DNI 12345678Z"
    )


def test_one_value_twice_is_one_placeholder_across_messages(pii: PiiRedactor) -> None:
    redaction = Redaction()
    first = pii.redact("mail a@example.com and b@example.com", redaction)
    second = pii.redact("again: b@example.com", redaction)
    assert first == "mail [EMAIL_1] and [EMAIL_2]" and second == "again: [EMAIL_2]"


def test_a_stream_gets_placeholders_back_even_split_across_chunks(pii: PiiRedactor) -> None:
    redaction = Redaction()
    pii.redact("card 4111 1111 1111 1111 and a@example.com", redaction)
    restorer = StreamRestorer(redaction)
    chunks = ["Your card [CA", "RD_1] is", " noted; I wrote to [", "EMAIL_1]", ". [sic] ok ["]
    shown = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert shown == "Your card 4111 1111 1111 1111 is noted; I wrote to a@example.com. [sic] ok ["
    # A placeholder the redaction never made is left as the model wrote it.
    assert redaction.restore("[EMAIL_9]") == "[EMAIL_9]"
