"""The one plan stage: what each row sends, its cache key, the reply the cache already has, and what it may cost.

The online run, the dry run and the Batch API all build their requests with ``plan``, so a dry run prices
exactly what a run sends. Rows of one prompt (``repeat=n``) share one body. Bodies are built a chunk at a time
with one cache query per chunk, so a batch of 100,000 rows starts sending after its first 500. The batch is
priced once, by ``price_batch``, as soon as its model is known.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nbtools._base.errors import ConfigError
from nbtools._base.options import BatchOptions
from nbtools._engine import wire
from nbtools._engine.cache import ReplyCache, SampleKeys, cache_is_on
from nbtools._engine.endpoints import Endpoint
from nbtools._engine.image_tokens import image_tokens, images_in
from nbtools._engine.prices import Price, price_for
from nbtools._engine.replies import Completion
from nbtools._engine.rows import RequestResult
from nbtools._engine.state import BatchState
from nbtools._engine.tokens import prompt_counter

CHUNK = 500  # rows planned (bodies, cache keys, one cache query) at a time
E = TypeVar("E", bound="CostEstimate")
Planned = tuple[RequestResult, dict[str, Any], "str | None", "Completion | None"]  # a row, its body, key and cached reply


def plan(rows: Sequence[RequestResult], options: BatchOptions, model: str, form: str | None, *,
         keys: SampleKeys | None = None, cache: ReplyCache | None = None) -> Iterator[Planned]:
    """Each row with the chat body it sends (``form``: how a schema is asked, see wire.schema_form); with ``keys``,
    its cache key; with ``cache`` too, the reply the cache holds for it (else None)."""
    last: object = None
    body: dict[str, Any] = {}
    for first in range(0, len(rows), CHUNK):
        chunk = rows[first : first + CHUNK]
        bodies = []
        for row in chunk:
            if row.prompt is not last:  # the rows of one prompt share its body
                last = row.prompt
                body = wire.chat_body(options, row.prompt, model, form)
            bodies.append(body)
        if keys is None:
            yield from ((row, body, None, None) for row, body in zip(chunk, bodies, strict=True))
            continue
        found = [keys.key(row.index, body) for row, body in zip(chunk, bodies, strict=True)]
        hits = cache.get_many(found) if cache is not None else {}  # one query per chunk, not one per row
        yield from ((row, body, key, hits.get(key)) for row, body, key in zip(chunk, bodies, found, strict=True))


class PromptTokens:
    """A planned body's prompt tokens as a provider counts them: its messages, its images (image_tokens.py), and
    the schema sent with them.

    Counted with the model's tokenizer where one is installed, else estimated (``label`` says which)."""

    def __init__(self, model: str | None, provider: str = "") -> None:
        self._count = prompt_counter(model)
        self.label = self._count.label
        self.model, self.provider = model, provider
        self._schema: int | None = None  # every row of a batch sends the same response_format

    def __call__(self, body: dict[str, Any]) -> int:
        tokens = self._count(body["messages"]) + (self.images(body) or 0)
        if "response_format" in body:
            if self._schema is None:
                self._schema = self._count([{"role": "system", "content": json.dumps(body["response_format"])}])
            tokens += self._schema
        return tokens

    def images(self, body: dict[str, Any]) -> int | None:
        """The body's image tokens: 0 without images, None when one of them has no known count."""
        total = 0
        for image, detail in images_in(body["messages"]):
            tokens = image_tokens(self.provider, self.model, image, detail)
            if tokens is None:
                return None
            total += tokens
        return total


def price_batch(state: BatchState, model: str) -> None:
    """The batch's price (or why it is unknown), once its model is known; with max_cost, refuse to run without a
    price or without a bound on each reply's length."""
    options = state.options
    price = state.price = price_for(state.endpoint, model, options.price,
                                    batch_api=options.via == "batch",  # a Batch API job has its own rates
                                    tier=options.tier)
    if price is None:
        state.price_note = (f"no price known for {model} at {state.endpoint.host}: "
                            "pass price=(input, output) in USD per million tokens (magic: --price 0.15,0.60)")
    else:
        state.price_note = price.source
    if options.max_cost is None:
        return
    if price is None:
        raise ConfigError(f"max_cost needs a price, and {state.price_note}")
    if not price.free and options.reply_bound is None:
        raise ConfigError(f"max_cost={options.max_cost:g} needs max_tokens= (the longest reply, so the worst "
                          "case of each request is known): e.g. max_tokens=512 (magic: --max-tokens 512)")


# -- the dry run -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EstimateRow:
    index: int
    prompt: str  # the prompt as one line (its last user message)
    prompt_tokens: int
    max_completion_tokens: int | None  # the worst case: max_tokens, if set
    cost_low: float | None  # a reply of no tokens; None: price unknown
    cost_high: float | None  # a reply of max_tokens; None: price unknown or no max_tokens
    cached: bool  # the reply cache holds the answer: no request, no cost
    image_tokens: int | None = 0  # of prompt_tokens, the images'; None: not known for this model (nor its cost)


class CostEstimate:
    """What a batch would send and cost, row by row and in total; nothing is sent to know it."""

    def __init__(self, rows: list[EstimateRow], model: str | None, endpoint: Endpoint, price: Price | None,
                 price_note: str, tokens_label: str, max_tokens: int | None, max_cost: float | None = None) -> None:
        self.rows = rows
        self.model = model
        self.endpoint = endpoint
        self.price = price
        self.price_note = price_note
        self.tokens_label = tokens_label
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        sent = [r for r in rows if not r.cached]
        self.requests = len(sent)
        self.cached = len(rows) - len(sent)
        self.prompt_tokens = sum(r.prompt_tokens for r in sent)
        self.max_completion_tokens = None if max_tokens is None else max_tokens * len(sent)
        known = [r.image_tokens for r in sent if r.image_tokens is not None]
        self.image_tokens: int | None = sum(known) if len(known) == len(sent) else None  # None: some unknown
        priced = price is not None and self.image_tokens is not None
        self.cost_low = sum(r.cost_low or 0.0 for r in sent) if priced else None
        self.cost_high = sum(r.cost_high or 0.0 for r in sent) if priced and max_tokens is not None else None

    def __len__(self) -> int:
        return len(self.rows)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.__dict__.copy() for r in self.rows]

    def fit_in_cap(self) -> int:
        """How many requests, in order, fit under max_cost at their worst case (more run if replies are shorter)."""
        spent, fit = 0.0, 0
        for r in self.rows:
            if not r.cached and r.cost_high is not None:
                if spent + r.cost_high > (self.max_cost or 0.0):
                    break
                spent += r.cost_high
                fit += 1
        return fit


def estimate(state: BatchState, make: Callable[..., E]) -> E:
    """What ``state``'s batch would cost (a CostEstimate, built by ``make``): each row's prompt tokens and cost
    range, as a run would plan it. Rows the reply cache answers cost nothing; reading the local cache sends nothing."""
    opts, endpoint, model = state.options, state.endpoint, state.model
    if model is None:  # the batch is priced once its model is known: here, only the user's price= can be
        state.price = price_for(endpoint, None, opts.price)
    price = state.price
    note = state.price_note or (price.source if price is not None else
                                "no model given (the server would be asked for one): pass model=")
    tokens = PromptTokens(model, "sim" if endpoint.simulated else endpoint.provider)
    bound = opts.reply_bound
    form = wire.schema_form(endpoint) if opts.schema is not None else None
    cached = cache_is_on(opts.cache, endpoint) and model is not None
    cache = ReplyCache() if cached else None
    keys = SampleKeys(endpoint.base_url, opts.repeat, opts.dedupe) if cached else None
    rows = []
    try:
        for row, body, _, hit in plan(state.rows, opts, model or "", form, keys=keys, cache=cache):
            count, images = tokens(body), tokens.images(body)
            priced = None if images is None else price  # an image of unknown tokens: a cost unknown, not low
            low = None if priced is None else priced.cost(count, 0)
            high = None if priced is None or bound is None else priced.cost(count, bound)
            rows.append(EstimateRow(row.index, row.prompt_text, count, bound, low, high, hit is not None, images))
    finally:
        if cache is not None:
            cache.close()
    return make(rows, model, endpoint, price, note, tokens.label, bound, opts.max_cost)
