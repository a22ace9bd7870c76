"""A chat-completions app that refuses each prompt's first attempt with a 429, then answers: for the tests of
how rate limits meet the spending cap, the concurrency limit and the wait counts."""

from __future__ import annotations

import asyncio

from aiohttp import web

OK_REPLY = {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}
RATE_LIMITED = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}


def first_attempt_rate_limited() -> tuple[web.Application, dict[str, int]]:
    """The app (429 with retry-after-ms 50 on each prompt's first attempt, then OK_REPLY) and its counts:
    requests received, in flight now, and the most in flight at once after the 429s."""
    seen: set[str] = set()
    counts = {"requests": 0, "in_flight": 0, "peak_after_429s": 0}

    async def chat(request: web.Request) -> web.Response:
        counts["requests"] += 1
        prompt = (await request.json())["messages"][-1]["content"]
        if prompt not in seen:
            seen.add(prompt)
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after-ms": "50"})
        counts["in_flight"] += 1
        counts["peak_after_429s"] = max(counts["peak_after_429s"], counts["in_flight"])
        try:
            await asyncio.sleep(0.02)
        finally:
            counts["in_flight"] -= 1
        return web.json_response(OK_REPLY)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app, counts
