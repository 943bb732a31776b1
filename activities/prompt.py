"""Assembling a reply's prompt within its token budget.

Order in the prompt: system instructions (+ summary of older turns, + relevant earlier
context, + tool results), the recent turns, the user's message. When it is over
CONTEXT_MAX_TOKENS, parts are dropped in this order until it fits: retrieved snippets
(least similar first), recent turns (oldest first), tool results (cut short), then the
summary (cut short). The system instructions and the user's message always stay."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from shared.models import ChatMessage, ContextReport, PromptParts

log = logging.getLogger(__name__)
PER_MESSAGE_OVERHEAD = 4  # role and separators, as OpenAI's chat format counts them
CHARS_PER_TOKEN = 3.5  # conservative estimate where no tokenizer is at hand


@functools.lru_cache(maxsize=8)
def token_counter(model: str) -> Callable[[str], int]:
    """tiktoken's count for OpenAI models when its encoding can be loaded (it fetches the
    encoding file once, then caches it); otherwise a conservative estimate."""
    try:
        import tiktoken

        try:
            encoding = tiktoken.encoding_for_model(model)
        except KeyError:
            encoding = tiktoken.get_encoding("o200k_base")
        return lambda text: len(encoding.encode(text, disallowed_special=()))
    except Exception as err:  # no tokenizer files offline: estimate instead
        log.info("token counts are estimated (%s)", type(err).__name__)
        return lambda text: int(len(text) / CHARS_PER_TOKEN) + 1


def _system_text(parts: PromptParts, retrieved: list[str], summary: str, tools: str) -> str:
    sections = [parts.system]
    if summary:
        sections.append(f"Summary of the conversation so far:\n{summary}")
    if retrieved:
        lines = "\n".join(f"- {s}" for s in retrieved)
        sections.append(f"Relevant earlier context from this conversation:\n{lines}")
    if tools:
        sections.append(tools)
    return "\n\n".join(sections)


def _cut(text: str, tokens: int, count: Callable[[str], int]) -> str:
    if tokens <= 0:
        return ""
    while text and count(text) > tokens:
        text = text[: int(len(text) * 0.8)]
    return text + " …" if text else ""


def assemble(
    parts: PromptParts, budget: int, count: Callable[[str], int]
) -> tuple[list[ChatMessage], ContextReport]:
    retrieved, recent = list(parts.retrieved), list(parts.recent)
    summary, tools = parts.summary, parts.tool_context
    trimmed: list[str] = []

    def build() -> tuple[list[ChatMessage], int]:
        messages = [
            ChatMessage(role="system", content=_system_text(parts, retrieved, summary, tools)),
            *recent,
            ChatMessage(role="user", content=parts.user),
        ]
        return messages, sum(count(m.content) + PER_MESSAGE_OVERHEAD for m in messages)

    messages, used = build()
    while used > budget:
        over = used - budget
        if retrieved:
            retrieved.pop()
            trimmed.append("retrieved")
        elif recent:
            del recent[:2]  # a turn is a user message and its reply
            trimmed.append("recent_turn")
        elif tools:
            tools = _cut(tools, count(tools) - over, count)
            trimmed.append("tool_context")
        elif summary:
            summary = _cut(summary, count(summary) - over, count)
            trimmed.append("summary")
        else:
            break  # only instructions and the message are left: send as is
        messages, used = build()
    report = ContextReport(
        prompt_tokens=used,
        recent_turns=len(recent) // 2,
        retrieved=len(retrieved),
        summary=bool(summary),
        tool_context=bool(tools),
        trimmed=sorted(set(trimmed)),
        embedder=parts.retrieval_embedder,
    )
    return messages, report
