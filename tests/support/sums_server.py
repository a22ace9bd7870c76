"""An independent chat endpoint whose models answer sums right or wrong in a known pattern, and whose judges say so
in a known way: the checks' and the judge's tests compare what nbtools figures with what this server decided.

Written apart from nbtools.sim (a test that asked the simulator would check nbtools against itself). A success is a
chat.completion object as in OpenAI's API reference (platform.openai.com/docs/api-reference/chat/object).

Models (the request's ``model``):
- ``right``: every sum right ("The answer is 7.").
- ``odd-wrong``: wrong (one more) when the first number is odd.
- ``judge-right``: a rubric prompt gets ``{"score": 5 or 1, "reason": ...}`` (5 when the reply's number is the sum;
  asked for pass/fail, ``{"pass": ...}``);
  a pairwise prompt gets the reply that holds the right sum (``{"winner": "A" or "B", ...}``).
- ``judge-first``: every pairwise prompt gets ``A``, whatever the replies say; a rubric prompt gets score 3.
- ``judge-garbled``: not JSON at all (an invalid output) on its first ``garbled`` requests, then as ``judge-right``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

SUM = re.compile(r"(\d+)\s*\+\s*(\d+)")
REPLY = re.compile(r"<reply(?: ([AB]))?>\s*(.*?)\s*</reply(?: [AB])?>", re.S)
NUMBER = re.compile(r"-?\d+")


def answer(model: str, prompt: str) -> str:
    """What a model answers to a sum: the pattern the tests count on."""
    found = SUM.search(prompt)
    if found is None:
        return "I only do sums."
    a, b = int(found.group(1)), int(found.group(2))
    wrong = model == "odd-wrong" and a % 2 == 1
    return f"The answer is {a + b + wrong}."


def _right(prompt: str, reply: str) -> bool:
    found, number = SUM.search(prompt), NUMBER.search(reply)
    return found is not None and number is not None and int(number.group()) == int(found.group(1)) + int(found.group(2))


def verdict(model: str, prompt: str) -> str:
    """A judge's reply to nbtools' rubric or pairwise prompt: the question is the first sum in it."""
    replies = {label or "": text for label, text in REPLY.findall(prompt)}
    if "A" in replies:  # pairwise
        if model == "judge-first":
            return json.dumps({"winner": "A", "reason": "the first one"})
        winner = "A" if _right(prompt, replies["A"]) else "B"
        return json.dumps({"winner": winner, "reason": "it holds the right sum"})
    if model == "judge-first":
        return json.dumps({"score": 3, "reason": "fine"})
    good = _right(prompt, replies.get("", ""))
    if '{"pass"' in prompt:  # asked for pass/fail
        return json.dumps({"pass": good, "reason": "right" if good else "wrong sum"})
    return json.dumps({"score": 5 if good else 1, "reason": "right" if good else "wrong sum"})


class SumsServer:
    """Counts what each model was sent; answers after ``latency`` seconds."""

    def __init__(self, latency: float = 0.005, garbled: int = 0, stagger: float = 0.0) -> None:
        self.latency = latency
        self.stagger = stagger  # a judge's n-th request answers n x stagger seconds later still: one verdict at a time
        self.garbled = garbled  # judge-garbled's first replies that are not JSON
        self.calls: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = str(body["model"])
        self.calls[model] = number = self.calls.get(model, 0) + 1  # its number, decided on arrival
        self.bodies.append(body)
        await asyncio.sleep(self.latency + (number * self.stagger if model.startswith("judge-") else 0.0))
        prompt = str(body["messages"][-1]["content"])
        if model.startswith("judge-"):
            if model == "judge-garbled" and number <= self.garbled:
                text = "I think it is fine, mostly."
            else:
                text = verdict(model, " ".join(str(m["content"]) for m in body["messages"] if m["role"] == "user"))
        else:
            text = answer(model, prompt)
        return web.json_response({
            "id": f"chatcmpl-{sum(self.calls.values())}", "object": "chat.completion", "created": 1767225600,
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        })


def sum_models(url: str) -> list[dict[str, str]]:
    """The server's two answering models as ``models=`` items, each labelled by its name."""
    return [{"base_url": url, "model": model, "label": model} for model in ("right", "odd-wrong")]
