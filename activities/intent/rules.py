"""The first layer: patterns that decide alone because they cannot mean anything else.
Each rule is checked against every labelled example and eval query in the tests (it must
never contradict one); anything that needs judgement is left to the classifier."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.models import Intent

RULE_CONFIDENCE = 0.98

# A message that is only a greeting, a thanks or an acknowledgement.
_SMALL_TALK = re.compile(
    r"^[\W¿¡]*(?:(?:(?:hi|hello|hey|yo|hiya|howdy|good (?:morning|afternoon|evening|night))"
    r"(?: there)?|thanks?(?: you)?(?: (?:so|very) much)?(?: again)?|thx|ty|cheers|bye|"
    r"goodbye|see you|ok(?:ay)?|cool|great|nice|awesome|perfect|got it|sure|yes|no|yep|"
    r"nope|lol|haha|hmm+|what'?s up|sup|how are you(?: doing)?(?: today)?|who are you|"
    r"what can you do|that'?s (?:very |really |so )?(?:helpful|great|perfect|useful)|"
    r"that helps|much appreciated|good job|well done|"
    # Spanish
    r"hola|buen[oa]s(?: d[ií]as| tardes| noches)?|(?:muchas )?gracias|adi[oó]s|hasta luego|"
    r"vale|perfecto|genial|de acuerdo|entendido|qu[eé] tal|c[oó]mo est[aá]s|"
    r"qui[eé]n eres|qu[eé] puedes hacer)\b[\s,!.?¡¿]*)+$",
    re.I,
)
# Creative writing and translation are chat whatever they are about
# ("write a poem about companies", "a limerick about the stock market").
_CREATIVE = re.compile(
    r"^\W*(?:(?:can|could|would) you\s+|please\s+)?(?:write|compose|make up|create|"
    r"generate|give me|tell me)\s+(?:me\s+)?(?:an?\s+|some\s+|\d+\s+|another\s+)?"
    r"(?:short\s+|funny\s+|little\s+|silly\s+)?(?:poems?|haikus?|limericks?|sonnets?|"
    r"songs?|raps?|rap verses?|lyrics|jokes?|riddles?|puns?|bedtime stor(?:y|ies)|"
    r"fairy tales?|short stor(?:y|ies)|fictional \w+|fake news \w+|slogans?|taglines?)\b",
    re.I,
)
_TRANSLATE = re.compile(r"^\W*(?:(?:can|could) you\s+|please\s+)?translate\b", re.I)
# Code pasted into the message.
_CODE = re.compile(
    r"```|Traceback \(most recent call last\)|\b[A-Z][a-zA-Z]*(?:Error|Exception):|"
    r"^\s*(?:def|class|import|from \w+ import|#include|SELECT .+ FROM)\b",
    re.I | re.M,
)
# Bare arithmetic: "17 * 23", "what's 2+2".
_ARITHMETIC = re.compile(
    r"^\W*(?:what(?:'s| is)\s+|calculate\s+|compute\s+)?[\d.,\s]+"
    r"(?:[-+*/^x\u00d7\u00f7%]\s*[\d.,\s]+)+\s*=?\s*\??$",
    re.I,
)
# Asking, in so many words, for a web search (with nothing about companies).
_WEB_COMMAND = re.compile(
    r"^\W*(?:(?:can|could) you\s+|please\s+)?(?:search (?:the )?(?:web|internet|online)|"
    r"google|do a web search|look online|check online|browse the web)\b",
    re.I,
)
# Asking, in so many words, for the company index.
_COMPANY_COMMAND = re.compile(
    r"\b(?:search|query|look (?:in|through)|check) (?:the |our |your )?(?:company|companies|"
    r"supplier|vendor|manufacturer)s? (?:database|index|directory|list)\b",
    re.I,
)
_COMPANY_WORDS = re.compile(
    r"\b(?:compan(?:y|ies)|suppliers?|vendors?|manufacturers?|makers?|firms?|distributors?|"
    r"contractors?|factor(?:y|ies)|startups?|brands?|providers?)\b",
    re.I,
)


@dataclass(frozen=True)
class RuleMatch:
    intent: Intent
    rule: str


def match(text: str) -> RuleMatch | None:
    """The intent a rule decides, or None to let the classifier judge."""
    stripped = text.strip()
    if not stripped:
        return RuleMatch("chat", "empty")
    if _SMALL_TALK.match(stripped):
        return RuleMatch("chat", "small_talk")
    if _CREATIVE.match(stripped):
        return RuleMatch("chat", "creative")
    if _TRANSLATE.match(stripped):
        return RuleMatch("chat", "translate")
    if _CODE.search(stripped):
        return RuleMatch("chat", "code")
    if _ARITHMETIC.match(stripped):
        return RuleMatch("chat", "arithmetic")
    if _COMPANY_COMMAND.search(stripped):
        return RuleMatch("company_search", "company_command")
    if _WEB_COMMAND.match(stripped) and not _COMPANY_WORDS.search(stripped):
        return RuleMatch("web_search", "web_command")
    return None
