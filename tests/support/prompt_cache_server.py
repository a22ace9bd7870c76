"""An OpenAI-compatible server with a prompt cache of its own, written apart from the simulator's.

It caches as OpenAI documents (platform.openai.com/docs/guides/prompt-caching): once a request whose prompt has at
least ``minimum`` tokens has been answered, a later request whose prompt starts with the same tokens reads them
from the cache, in steps of 128 tokens past the minimum, until ``ttl`` seconds after the entry was last used.
A token here is a word of the messages' text. It answers in each usage shape nbtools reads cached tokens from:
chat completions (``usage.prompt_tokens_details.cached_tokens``, openai-python ``types/completion_usage.py``) and
the Responses API (``usage.input_tokens_details.cached_tokens``, ``types/responses/response_usage.py``); each
reply names a dated model, a ``system_fingerprint`` and its ``x-request-id``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

STEP = 128
DATED = "gpt-4o-mini-2024-07-18"


def _words(messages: list[dict[str, Any]]) -> list[str]:
    words: list[str] = []
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else " ".join(
            str(part.get("text", "")) for part in content or () if isinstance(part, dict))
        words += [f"<{message.get('role')}>", *text.split()]  # a role marker keeps messages apart
    return words


@dataclass
class PromptCacheServer:
    latency: float = 0.2
    minimum: int = 1024
    ttl: float = 300.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    cached: dict[tuple[str, ...], float] = field(default_factory=dict)  # cached prefix -> when it expires
    numbers: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/responses", self.responses)
        return app

    def _read(self, words: list[str]) -> int:
        """Cached tokens for a prompt arriving now: the longest cached prefix it starts with."""
        now, found = time.monotonic(), 0
        for length in range(self.minimum, len(words) + 1, STEP):
            key = tuple(words[:length])
            if self.cached.get(key, 0.0) < now:
                break
            self.cached[key] = now + self.ttl
            found = length
        return found

    def _write(self, words: list[str]) -> None:
        until = time.monotonic() + self.ttl
        for length in range(self.minimum, len(words) + 1, STEP):
            self.cached[tuple(words[:length])] = until

    async def _answer(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[int, int, int, str]:
        """(n, prompt tokens, cached tokens, text) of a request, after its latency; its prompt cached from then."""
        self.bodies.append(body)
        self.numbers += 1
        n = self.numbers
        words = _words(messages)
        cached = self._read(words)
        await asyncio.sleep(self.latency)
        self._write(words)
        return n, len(words), cached, f"answer {n}"

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        n, prompt, cached, text = await self._answer(body, body["messages"])
        return web.json_response({
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1700000000, "model": DATED,
            "system_fingerprint": "fp_test", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                          "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2,
                      "prompt_tokens_details": {"cached_tokens": cached}}}, headers={"x-request-id": f"req_{n}"})

    async def responses(self, request: web.Request) -> web.Response:
        body = await request.json()
        given = body["input"]
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
        if body.get("instructions"):
            messages = [{"role": "system", "content": body["instructions"]}, *messages]
        n, prompt, cached, text = await self._answer(body, messages)
        return web.json_response({
            "id": f"resp_{n}", "object": "response", "created_at": 1700000000, "status": "completed", "model": DATED,
            "output": [{"type": "message", "id": f"msg_{n}", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": 2,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + 2}},
            headers={"x-request-id": f"req_{n}"})
