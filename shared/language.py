"""The language of a user's message, as far as a fixed reply needs it: English or Spanish,
the two the service is tested in; and text with its accents folded, for matching words."""

from __future__ import annotations

import unicodedata

# Words common in Spanish and rare in English: enough to answer a fixed notice in kind.
# fmt: off
_SPANISH = frozenset({
    "el", "la", "los", "las", "un", "una", "es", "son", "qué", "que", "cuál", "cuáles",
    "cómo", "dónde", "puedes", "puede", "por", "para", "con", "hay", "del", "al", "últimas",
    "noticias", "hoy", "precio", "empresas", "busca", "buscar", "dime", "sobre", "de", "en",
    "y", "tu", "mi", "lo", "pero", "muy", "también", "está", "están", "puedo", "tengo",
    "nombre", "gracias", "hola", "siento", "esto", "este", "esta", "más", "ni", "ya",
})
# fmt: on


def looks_spanish(message: str) -> bool:
    # Lowercase words only: names ("El Paso", "Los Angeles") and codes ("LA") say nothing.
    words = [w.strip("¿?¡!.,;:()\"'") for w in message.split()]
    words = [w for w in words if w and w == w.lower()]
    hits = len(_SPANISH.intersection(words))  # distinct: "la la land" is not Spanish
    return "¿" in message or "¡" in message or hits >= 4 or (hits >= 2 and hits * 4 >= len(words))


def fold_accents(text: str) -> str:
    """ "compañías" -> "companias": Spanish is often typed without its accents anyway."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
