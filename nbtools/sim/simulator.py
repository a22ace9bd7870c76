"""The simulator's behaviour: routes, and the life of one chat-completion request, whatever carries it.

A request goes: parse (400) -> rate limits (429) -> instant faults (500/503/429/reset)
-> capacity gate (queue or 503) -> latency -> reply (plain JSON or SSE stream).
Each request arrives as an Exchange (nbtools._engine.transport.local): from the HTTP server (server.py) or by
direct calls in this process (local.py). Everything runs on one event loop, so the state needs no locks.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from nbtools._engine.gates.limiter import Limiter
from nbtools._engine.transport.local import Exchange
from nbtools.sim import directives as sim_directives
from nbtools.sim import judge as sim_judge
from nbtools.sim.batches import BatchSim
from nbtools.sim.config import FAULT_KNOBS, SimConfig
from nbtools.sim.limits import RateLimiter, retry_headers
from nbtools.sim.lineup import LINEUP
from nbtools.sim.prefix_cache import PrefixCache
from nbtools.sim.protocol import (
    DONE,
    ChatRequest,
    ChunkWriter,
    completion_body,
    error_body,
    models_body,
    parse_chat_request,
    refused_field,
    refused_parameter,
    usage,
)
from nbtools.sim.replies import Reply, ReplyMaker, count_words
from nbtools.sim.responses import EventWriter, parse_responses_request, response_body
from nbtools.sim.stats import Stats
from nbtools.sim.structured import REFUSAL, fake_reply, schema_of

_JSON = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_MALFORMED_SSE = b'data: {"id":"chatcmpl-broken","choices":[{"delta":\n\n' + DONE
_INSTANT_FAULTS = {  # fault -> (status, message, type)
    "500": (500, "The server had an error while processing your request. (simulated)", "server_error"),
    "503": (503, "The server is overloaded or not ready yet. (simulated)", "server_error"),
    "flaky": (503, "The server is overloaded or not ready yet. (simulated flaky)", "server_error"),
}

UNLIMITED = sys.maxsize  # no capacity knob: the gate never makes anyone wait


class Simulator:
    """All mutable server state; lives on the server's event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.t0 = time.monotonic()
        self.batches = BatchSim(self)  # the Batch APIs: their own state and clock, answered through answer() too
        self.stats = Stats()
        self.gate = Limiter(UNLIMITED)  # the capacity gate: FIFO, slots handed over in order
        self._ids = itertools.count(1)
        self._apply(config)
        self.reset()

    def configure(self, /, **knobs: Any) -> SimConfig:
        """Validate and apply knob changes live; ValueError leaves the config untouched."""
        old, new = self.config, self.config.replace(**knobs)
        self._apply(new)
        if new.seed != old.seed:
            self.rng = random.Random(new.seed)
        if (new.rpm, new.tpm, new.rate_burst) != (old.rpm, old.tpm, old.rate_burst):
            self.limiter = _limiter(new)
        return new

    def reset(self) -> None:
        """Zero the counters, restart the random stream, forget flaky counts, rate windows and the prompt cache."""
        self.stats.reset(processing=self.gate.active)
        self.prompt_cache = PrefixCache()
        self.rng = random.Random(self.config.seed)
        self.limiter = _limiter(self.config)
        self.flaky: Counter[str] = Counter()

    def _apply(self, config: SimConfig) -> None:
        # Precompute everything a request would otherwise derive from the config.
        self.config = config
        self.replies = ReplyMaker(config.seed, config.reply)
        self.gate.limit = config.capacity or UNLIMITED
        self._models = models_body(config.models, int(time.time()))
        bound, self._fault_bounds = 0.0, []
        for knob in FAULT_KNOBS:
            if getattr(config, knob) > 0:
                bound += getattr(config, knob)
                self._fault_bounds.append((bound, knob.removeprefix("fail_")))

    # -- routes -------------------------------------------------------------------------

    async def answer(self, method: str, path: str, exchange: Exchange) -> None:
        """Answer one request, as the HTTP server's routes do."""
        route = self.routes.get((method, path))
        if route is not None:
            await route(exchange)
            return
        found = self.batches.match(method, path)
        if found is None:
            await exchange.send(404, error_body(f"Unknown request URL: {method} {path}.", "invalid_request_error"), {})
            return
        batch_route, named = found
        await batch_route(exchange, named)

    @property
    def routes(self) -> dict[tuple[str, str], Callable[[Exchange], Awaitable[None]]]:
        """(method, path) -> the coroutine that answers it."""
        return {("POST", "/v1/chat/completions"): self.chat, ("POST", "/v1/responses"): self.responses,
                ("GET", "/v1/models"): self.models, ("GET", "/sim/stats"): self.get_stats,
                ("POST", "/sim/reset"): self.post_reset, ("POST", "/sim/config"): self.post_config}

    async def chat(self, exchange: Exchange) -> None:
        await self._answer(exchange, "chat")

    async def responses(self, exchange: Exchange) -> None:
        """POST /v1/responses: the same model, limits and faults, in the Responses API's format."""
        await self._answer(exchange, "responses")

    async def _answer(self, exchange: Exchange, wire: str) -> None:
        record: dict[str, Any] = {"t": time.monotonic() - self.t0, "key": "", "status": None, "stream": False}
        self.stats.arrive(record)
        try:
            await self._chat(exchange, record, wire)
        finally:
            self.stats.in_flight -= 1

    async def models(self, exchange: Exchange) -> None:
        await exchange.send(200, self._models, {})

    async def get_stats(self, exchange: Exchange) -> None:
        await exchange.send(200, json.dumps(self.stats.snapshot()).encode(), {})

    async def post_reset(self, exchange: Exchange) -> None:
        self.reset()
        await exchange.send(200, b'{"reset": true}', {})

    async def post_config(self, exchange: Exchange) -> None:
        try:
            knobs = json.loads(await exchange.read() or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError("the body must be a JSON object of knob changes, e.g. {\"latency\": 0.1}")
            config = self.configure(**knobs)
        except ValueError as exc:
            await exchange.send(400, error_body(str(exc), "invalid_request_error"), {})
            return
        await exchange.send(200, json.dumps(config.to_dict()).encode(), {})

    # -- one chat completion ------------------------------------------------------------

    async def _chat(self, exchange: Exchange, record: dict[str, Any], wire: str = "chat") -> None:
        config = self.config
        parse = parse_responses_request if wire == "responses" else parse_chat_request
        raw = await exchange.read()
        try:
            req = parse(raw, config.models[0])
            directives = sim_directives.parse(req.last_user)
            schema, _ = schema_of(req.response_format)
        except ValueError as exc:  # BadRequest, or a bad [[sim:...]] directive
            body = error_body(str(exc), "invalid_request_error", code=getattr(exc, "code", None),
                              param=getattr(exc, "param", None))
            await self._send(exchange, record, 400, body, self._limit_headers())
            return
        refused = _refused_parameter(config, req.model, raw)
        if refused is not None:
            await self._send(exchange, record, 400, refused, self._limit_headers())
            return
        record["key"] = req.last_user[:60]
        record["stream"] = req.stream
        # Exactly two draws per valid request keep a serial run reproducible whatever the knobs.
        z, u = self.rng.gauss(0.0, 1.0), self.rng.random()

        reply, finish, refusal = self.make_reply(req, directives, schema)
        prompt_tokens = sum(count_words(text) for _, text in req.messages) + sum(s.tokens for s in req.seen)
        headers, over = self._admit(prompt_tokens + len(reply.tokens))
        if over is not None:
            kind, wait = over
            message = f"Rate limit reached for {kind} per min. Please try again in {wait:.3f}s."
            await self._send_429(exchange, record, headers, message, kind, wait)
            return
        fault = self._fault(req.last_user, directives, u)
        if await self._end_at_once(exchange, record, fault, headers, config):
            return
        if not await self._take_slot(exchange, record, headers, config):
            return
        # What the prompt cache holds when the request is processed; its own prefixes are kept once it is answered.
        cached, prefixes = self.prompt_cache.read(req.model, req.messages, config.prompt_cache_min,
                                                  config.prompt_cache_ttl, time.monotonic())
        try:
            if fault == "slow":
                await asyncio.sleep(config.slow_delay)
            job = _Job(
                exchange,
                record,
                req.model,
                None if directives.empty else reply,
                finish,
                None if directives.nousage else usage(prompt_tokens, len(reply.tokens), cached),
                req.include_usage,
                directives.malformed,
                fault == "disconnect",
                headers,
                refusal,
                wire,
                prefixes,
            )
            ttft, total = self._timing(config, req.model, directives, z, len(reply.tokens))
            if req.stream:
                await self._stream(job, ttft, total)
                return
            await asyncio.sleep(total)
            await self._reply(job)
        finally:
            self.gate.release()

    def _limit_headers(self) -> dict[str, str]:
        """The x-ratelimit-* headers as they stand, for a reply that takes nothing from the budget."""
        return {} if self.limiter is None else self.limiter.headers(time.monotonic())

    def _admit(self, tokens: int) -> tuple[dict[str, str], tuple[str, float] | None]:
        """Take a request of ``tokens`` from the rpm/tpm budget: (the x-ratelimit-* headers, None), or with
        (limit kind, seconds to wait) in place of None when it does not fit."""
        if self.limiter is None:
            return {}, None
        now = time.monotonic()
        over = self.limiter.admit(now, tokens)
        return self.limiter.headers(now), over

    def _fault(self, prompt: str, directives: sim_directives.Directives, u: float) -> str | None:
        """The fault a request meets, counted: its [[sim:...]] fault, a fail_* draw, or a [[sim:flaky=N]] failure."""
        fault = directives.fault or self._draw_fault(u)
        if fault is None and directives.flaky:
            self.flaky[prompt] += 1
            if self.flaky[prompt] <= directives.flaky:
                fault = "flaky"
        if fault is not None:
            self.stats.faults[fault] += 1
        return fault

    async def _end_at_once(
        self, exchange: Exchange, record: dict[str, Any], fault: str | None, headers: dict[str, str],
        config: SimConfig,
    ) -> bool:
        """Answer a fault that ends the request before it takes a slot; False for no such fault (none, or one
        met later: slow, disconnect)."""
        if fault in _INSTANT_FAULTS:
            status, message, kind = _INSTANT_FAULTS[fault]
            await self._send(exchange, record, status, error_body(message, kind), headers)
        elif fault == "429":
            message = "Rate limit reached (simulated fault). Please try again later."
            await self._send_429(exchange, record, headers, message, "requests", config.retry_after)
        elif fault == "reset":
            exchange.drop(reset=True)
        else:
            return False
        return True

    async def _take_slot(
        self, exchange: Exchange, record: dict[str, Any], headers: dict[str, str], config: SimConfig
    ) -> bool:
        """Take a capacity slot, waiting in line for it (True); or, past capacity with over_capacity='503', answer
        503 (no slot taken: False)."""
        gate = self.gate
        if not gate.try_acquire():
            if config.over_capacity == "503":
                body = error_body("Server busy: maximum concurrent requests exceeded. (simulated)", "server_error")
                await self._send(exchange, record, 503, body, headers)
                return False
            await gate.acquire()
        if gate.active > self.stats.peak_processing:
            self.stats.peak_processing = gate.active
        return True

    def make_reply(self, req: ChatRequest, directives: sim_directives.Directives,
                   schema: dict[str, Any] | None) -> tuple[Reply, str, str | None]:
        """(reply, finish_reason, refusal) for a request: text, or JSON that fits its schema (online and batch)."""
        refusal = None
        if req.model == sim_judge.NAME:  # it answers in the verdict's format, asked for a schema or not
            whole = "\n".join(text for role, text in req.messages if role == "user")
            reply = Reply.of(sim_judge.verdict(whole, self.config.judge_bias))
        elif schema is None:
            named = LINEUP.get(req.model)  # a model of the lineup has its own replies
            reply = named.reply(req.last_user) if named is not None else self.replies.make(req.messages, req.last_user)
            if req.seen:  # what it can read of the images and files comes first
                reply = Reply.of("I see: " + "; ".join(s.words for s in req.seen) + ". " + reply.text)
        else:  # the shares are drawn from the request's hash: the random stream keeps its two draws per request
            seed = hashlib.blake2b(repr((self.config.seed, req.messages)).encode(), digest_size=16).digest()
            u_refuse, u_invalid = seed[0] / 256, seed[1] / 256
            if directives.refuse or u_refuse < self.config.refusal:
                refusal = REFUSAL
                reply = Reply.of(REFUSAL)
            else:
                invalid = directives.invalid or u_invalid < self.config.invalid_output
                first_user = next((text for role, text in req.messages if role == "user"), req.last_user)
                reply = Reply.of(fake_reply(schema, first_user, seed, invalid=invalid))  # a retry: the same item
        finish = "stop"
        if req.max_tokens is not None and req.max_tokens < len(reply.tokens) and refusal is None:
            reply, finish = reply.truncated(req.max_tokens), "length"
        return reply, finish, refusal

    def _draw_fault(self, u: float) -> str | None:
        for bound, kind in self._fault_bounds:
            if u < bound:
                return kind
        return None

    def _timing(
        self, config: SimConfig, model: str, directives: sim_directives.Directives, z: float, n: int
    ) -> tuple[float, float]:
        """(seconds to first token, seconds to the end of the reply)."""
        named = LINEUP.get(model)  # a model of the lineup has its own speed
        if named is not None and directives.latency is None:
            return named.timing(z, config.latency_spread, n)
        if directives.latency is not None:
            latency = directives.latency
        else:
            sigma = config.latency_spread  # the -sigma²/2 shift keeps the mean at `latency`
            latency = config.latency * math.exp(sigma * z - sigma * sigma / 2)
        ttft = 0.3 * latency if config.ttft is None else config.ttft
        if config.tokens_per_second is not None and directives.latency is None:
            return ttft, ttft + n / config.tokens_per_second
        return min(ttft, latency), latency

    def _processed(self, job: _Job) -> None:
        """The prompt has been read (the reply begins): the prompt cache keeps its prefixes; the hit is counted."""
        config = self.config
        self.prompt_cache.write(job.prefixes, config.prompt_cache_ttl, time.monotonic())
        cached = job.usage["prompt_tokens_details"]["cached_tokens"] if job.usage is not None else 0
        if cached:
            self.stats.prompt_cache_hits += 1
            self.stats.cached_tokens += cached

    async def _reply(self, job: _Job) -> None:
        self._processed(job)
        encode = response_body if job.wire == "responses" else completion_body
        prefix = "resp_sim" if job.wire == "responses" else "chatcmpl-sim"
        body = encode(f"{prefix}{next(self._ids)}", int(time.time()), job.model, job.reply, job.finish, job.usage,
                      job.refusal)
        if job.malformed:
            await self._send(job.exchange, job.record, 200, body[: len(body) // 2], job.headers)
            return
        if job.disconnect:  # announce the whole body, send half, hang up
            headers = {**job.headers, "Content-Type": _JSON, "Content-Length": str(len(body))}
            try:
                await job.exchange.open(headers)
                await job.exchange.write(body[: len(body) // 2])
            except ConnectionError:
                pass
            job.exchange.drop(reset=False)
            return
        await self._send(job.exchange, job.record, 200, body, job.headers)
        if job.record["status"] == 200 and job.reply is not None:
            self._count_tokens(job.usage)

    async def _stream(self, job: _Job, ttft: float, total: float) -> None:
        """A streamed reply: chat chunks, or the Responses API's typed events; one delta per token, paced."""
        exchange = job.exchange
        await asyncio.sleep(ttft)
        self._processed(job)
        write_body: Callable[[Exchange, _Job, float], Awaitable[bool]]
        if job.wire == "responses":
            write_body = partial(self._write_events, EventWriter(f"resp_sim{next(self._ids)}", int(time.time()), job.model))
        else:
            write_body = partial(self._write_chunks, ChunkWriter(f"chatcmpl-sim{next(self._ids)}", int(time.time()), job.model))
        try:
            await exchange.open({**job.headers, **_SSE_HEADERS})
            if job.malformed:
                await exchange.write(_MALFORMED_SSE)
            elif not await write_body(exchange, job, total - ttft):
                return  # hung up part-way
            await exchange.end()
        except ConnectionError:  # the client went away
            return
        self.stats.finish(job.record, 200)
        if job.reply is not None and not job.malformed:
            self._count_tokens(job.usage)

    async def _write_chunks(self, chunks: ChunkWriter, response: Exchange, job: _Job, span: float) -> bool:
        """The chat stream's chunks, the tokens over ``span`` seconds; False if it hung up part-way."""
        if job.reply is None:  # [[sim:empty]]
            await response.write(chunks.no_choices().encode() + DONE)
        elif job.refusal is not None:
            await response.write((chunks.refusal(job.refusal) + chunks.finish(job.finish)).encode() + DONE)
        else:
            tokens = job.reply.tokens or ("",)
            if not await _write_tokens(response, job, len(tokens), span, lambda i: chunks.token(tokens[i], i == 0)):
                return False
            tail = chunks.finish(job.finish)
            if job.include_usage and job.usage is not None:
                tail += chunks.usage(job.usage)
            await response.write(tail.encode() + DONE)
        return True

    async def _write_events(self, events: EventWriter, response: Exchange, job: _Job, span: float) -> bool:
        """The Responses API's events, the tokens over ``span`` seconds; False if it hung up part-way."""
        await response.write(events.opening().encode())
        tokens = job.reply.tokens if job.reply is not None else ()
        if not await _write_tokens(response, job, len(tokens), span, lambda i: events.token(tokens[i])):
            return False
        await response.write(events.closing(job.reply, job.finish, job.usage).encode())
        return True

    def _count_tokens(self, use: dict[str, Any] | None) -> None:
        if use is not None:
            self.stats.prompt_tokens += use["prompt_tokens"]
            self.stats.completion_tokens += use["completion_tokens"]

    async def _send_429(
        self,
        exchange: Exchange,
        record: dict[str, Any],
        headers: dict[str, str],
        message: str,
        kind: str,
        wait: float,
    ) -> None:
        body = error_body(message, kind, code="rate_limit_exceeded")
        await self._send(exchange, record, 429, body, {**headers, **retry_headers(wait)})

    async def _send(
        self, exchange: Exchange, record: dict[str, Any], status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        """Send a whole response now, so the counters know it was fully sent."""
        if await exchange.send(status, body, headers):
            self.stats.finish(record, status)


@dataclass(slots=True)
class _Job:
    """What the reply phase of one request needs."""

    exchange: Exchange
    record: dict[str, Any]
    model: str
    reply: Reply | None  # None for [[sim:empty]]
    finish: str
    usage: dict[str, Any] | None  # None for [[sim:nousage]]
    include_usage: bool
    malformed: bool
    disconnect: bool
    headers: dict[str, str]
    refusal: str | None = None  # message.refusal instead of content
    wire: str = "chat"  # or "responses": the format of the reply
    prefixes: list[tuple[int, str]] = field(default_factory=list)  # what the prompt cache keeps once it is processed


def _refused_parameter(config: SimConfig, model: str, raw: bytes) -> bytes | None:
    """OpenAI's 400 for a field of the request ``model`` does not take (the refuse knob), or None."""
    if not config.refuse:
        return None
    sent = json.loads(raw)
    field = refused_field(config.refuse, model, sent)
    return None if field is None else refused_parameter(field, sent[field])


def _limiter(config: SimConfig) -> RateLimiter | None:
    if config.rpm is None and config.tpm is None:
        return None
    return RateLimiter(config.rpm, config.tpm, config.rate_burst)


async def _write_tokens(
    response: Exchange, job: _Job, n: int, span: float, delta: Callable[[int], str]
) -> bool:
    """The deltas of ``n`` tokens (``delta(i)``: the text for token i), spread evenly over ``span`` seconds; with
    ``job.disconnect``, half of them, then hang up and return False."""
    end = max(1, n // 2) if job.disconnect and n else n
    step = span / (n - 1) if n > 1 else 0.0
    async for due in _due_tokens(end, step):
        await response.write("".join(delta(i) for i in due).encode())
    if job.disconnect:
        job.exchange.drop(reset=False)
        return False
    return True


async def _due_tokens(end: int, step: float) -> AsyncIterator[range]:
    """The indices of tokens ``0..end`` (one due every ``step`` seconds) in groups: sleep until the next one is
    due, then give every token due by now, to be sent in one write."""
    loop = asyncio.get_running_loop()
    first = loop.time()
    i = 0
    while i < end:
        wait = i * step - (loop.time() - first)
        if wait > 0:
            await asyncio.sleep(wait)
        elapsed = loop.time() - first
        j = i
        while j < end and j * step <= elapsed:
            j += 1
        if j > i:
            yield range(i, j)
        i = j
