"""Prompt tokens before sending: counted with the model's tokenizer where one is installed, else
estimated (about 4 characters a token), and labelled as such.

The tokenizer is quicktok (the optional extra ``nbtools-llm[tokens]``): it ships the OpenAI
(cl100k_base, o200k_base), Llama-3 and Qwen encodings inside the package, so counting needs no
network (tiktoken downloads its files at first use). Other models (Claude, Grok...) are estimated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from nbtools._engine.gates.pacing import estimate_prompt_tokens
from nbtools._engine.replies import text_of

# Chat framing as OpenAI's cookbook counts it (openai/openai-cookbook,
# examples/How_to_count_tokens_with_tiktoken.ipynb): 3 per message besides its role and content, 3 to
# prime the reply. Other chat templates differ by a few tokens a message.
PER_MESSAGE, REPLY_PRIMING = 3, 3


class PromptCounter:
    """``counter(messages)`` -> prompt tokens; ``exact`` is False when they are estimated."""

    def __init__(self, count: Callable[[str], int] | None, encoding: str | None) -> None:
        self._count = count
        self.encoding = encoding
        self.exact = count is not None

    @property
    def label(self) -> str:
        return f"counted ({self.encoding})" if self.exact else "estimated (~4 characters a token)"

    def __call__(self, messages: list[Mapping[str, Any]]) -> int:
        if self._count is None:
            return estimate_prompt_tokens(messages)
        count = self._count
        return sum(count(str(m.get("role", ""))) + count(text_of(m.get("content", ""))) + PER_MESSAGE
                   for m in messages) + REPLY_PRIMING


@lru_cache(maxsize=32)
def prompt_counter(model: str | None) -> PromptCounter:
    """The counter for ``model``: its tokenizer if quicktok knows it, else the estimate."""
    if model:
        try:
            import quicktok

            encoding = quicktok.encoding_for_model(model)
        except (ImportError, KeyError, ValueError):
            pass
        else:
            return PromptCounter(encoding.count, encoding.name)
    return PromptCounter(None, None)
