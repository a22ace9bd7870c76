"""A local OpenAI-compatible chat endpoint that answers some requests with a provider's documented error.

Used by tests/engine/test_provider_error_replies.py and benchmarks/failures.py. The error replies (status, headers,
body) come from tests/support/provider_errors.py, each with its source; a success is a chat.completion object as
in OpenAI's API reference (platform.openai.com/docs/api-reference/chat/object), the shape every server
here (xAI, Anthropic's OpenAI SDK compatibility layer, Ollama's /v1, vLLM, llama.cpp's server) answers with.
``HeldEcho`` (the browser tests' grid) echoes too, holding some replies until the test releases them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.support.provider_errors import ErrorReply

# Which reply a request gets: (its number on this server, from 1; its JSON body) -> an error, or None for a success.
Script = Callable[[int, dict[str, Any]], "ErrorReply | None"]


def every(n: int, reply: ErrorReply) -> Script:
    """``reply`` to every n-th request (n=1: all of them)."""
    return lambda number, body: reply if number % n == 0 else None


def share(fraction: float, reply: ErrorReply) -> Script:
    """``reply`` to exactly ``fraction`` of the requests, spread evenly (10%: the 10th, 20th, ...)."""
    return lambda number, body: reply if int(number * fraction) > int((number - 1) * fraction) else None


def when_prompt_has(marker: str, reply: ErrorReply) -> Script:
    """``reply`` to the requests whose last message contains ``marker``."""
    return lambda number, body: reply if marker in str(body["messages"][-1]["content"]) else None


class ProviderServer:
    """Counts what it is sent; answers after ``latency`` seconds with the script's error or an echo of the prompt."""

    def __init__(self, script: Script | None = None, latency: float = 0.005) -> None:
        self.script: Script = script or (lambda number, body: None)
        self.latency = latency
        self.calls = 0
        self.errors = 0
        self.in_flight = 0
        self.prompts: list[str] = []
        self.authorization: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.Response:
        self.calls += 1  # counted on arrival: a request cancelled in flight was still sent
        number = self.calls
        self.authorization.add(request.headers.get("Authorization", ""))
        body = await request.json()
        self.prompts.append(str(body["messages"][-1]["content"]))
        self.in_flight += 1
        try:
            reply = self.script(number, body)  # decided on arrival, answered after the latency
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        if reply is not None:
            self.errors += 1
            return web.Response(status=reply.status, body=reply.raw(), headers=reply.headers)
        text = str(body["messages"][-1]["content"])
        return web.json_response({
            "id": f"chatcmpl-{number}", "object": "chat.completion", "created": 1767225600, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        })


class HeldEcho(ProviderServer):
    """Echoes each prompt after ``latency`` seconds, but holds the replies to prompts containing ``held`` until
    ``release()``: a batch stays part-way done until the test has seen it so, however slow the machine is."""

    def __init__(self, held: str, latency: float) -> None:
        super().__init__(latency=latency)
        self.held = held
        self.base_url = ""
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()  # aiohttp keeps the body: the echo reads it again
        if self.held in str(body["messages"][-1]["content"]):
            await asyncio.get_running_loop().run_in_executor(None, self._released.wait)
        return await super()._chat(request)
