"""The one plan stage: what each row sends, its cache key, the reply the cache already has, and what it may cost.

The online run, the dry run and the Batch API all build their requests with ``plan``, so a dry run prices
exactly what a run sends. Rows of one prompt (``repeat=n``) share one body. Bodies are built a chunk at a time
with one cache query per chunk, so a batch of 100,000 rows starts sending after its first 500. The batch is
priced once, by ``price_batch``, as soon as its model is known.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from nbtools._base.errors import ConfigError
from nbtools._base.options import BatchOptions
from nbtools._engine import prompt_cache, wire
from nbtools._engine.cache import ReplyCache, SampleKeys, cache_is_on
from nbtools._engine.endpoints import Endpoint
from nbtools._engine.gates.adaptive import AUTO_START
from nbtools._engine.image_tokens import image_tokens, images_in
from nbtools._engine.prices import MTOK, Price, price_for
from nbtools._engine.replies import Completion
from nbtools._engine.rows import RequestResult
from nbtools._engine.state import BatchState
from nbtools._engine.tokens import PromptCounter, prompt_counter

ESTIMATE = PromptCounter(None, None)  # about 4 characters a token: no tokenizer to load

CHUNK = 500  # rows planned (bodies, cache keys, one cache query) at a time
E = TypeVar("E", bound="CostEstimate")
Planned = tuple[RequestResult, dict[str, Any], "str | None", "Completion | None"]  # a row, its body, key and cached reply


def plan(rows: Sequence[RequestResult], options: BatchOptions, model: str, form: str | None, *,
         keys: SampleKeys | None = None, cache: ReplyCache | None = None,
         fields: dict[str, Any] | None = None) -> Iterator[Planned]:
    """Each row with the chat body it sends (``form``: how a schema is asked, see wire.schema_form); with ``keys``,
    its cache key; with ``cache`` too, the reply the cache holds for it (else None). ``fields``: request fields
    every body adds (the prompt cache's, from ``cache_fields``), unless ``params`` sets them."""
    extra = {k: v for k, v in (fields or {}).items() if k not in options.params}
    last: object = None
    body: dict[str, Any] = {}
    for first in range(0, len(rows), CHUNK):
        chunk = rows[first : first + CHUNK]
        bodies = []
        for row in chunk:
            if row.prompt is not last:  # the rows of one prompt share its body
                last = row.prompt
                body = wire.chat_body(options, row.prompt, model, form)
                if extra:
                    body.update(extra)
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
        self._count = self.counter = prompt_counter(model)
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
    if state.endpoint.provider == "anthropic":
        if options.via != "batch":
            state.price_note += f"; {prompt_cache.ANTHROPIC_NOTE}"
        elif price is not None:  # its batch lines cache the shared system text for an hour (wire.anthropic_params)
            price = state.price = replace(price, hour_writes=True)
    if options.max_cost is None:
        return
    if price is None:
        raise ConfigError(f"max_cost needs a price, and {state.price_note}")
    if not price.free and options.reply_bound is None:
        raise ConfigError(f"max_cost={options.max_cost:g} needs max_tokens= (the longest reply, so the worst "
                          "case of each request is known): e.g. max_tokens=512 (magic: --max-tokens 512)")


def measure_prefix(state: BatchState, model: str, count: PromptCounter = ESTIMATE) -> None:
    """What the rows share at their start, and the fewest tokens ``model``'s provider caches: once the model is
    known, before anything is sent. Counted with ``count``: by default estimated, as a run needs no more to decide
    (loading a tokenizer costs a quarter of a second of CPU); the dry run counts with the model's tokenizer."""
    prompts = []
    last: object = None
    for row in state.rows:
        if row.prompt is not last:  # the rows of one prompt share it
            last = row.prompt
            prompts.append(row.prompt)
    if all(isinstance(prompt, str) for prompt in prompts):
        state.shared_prefix = prompt_cache.measure_texts(state.options.system, prompts, count)  # type: ignore[arg-type]
    else:
        state.shared_prefix = prompt_cache.measure([wire.messages(state.options, p) for p in prompts], count)
    state.cache_minimum = prompt_cache.minimum_tokens(state.endpoint, model,
                                                      batch_api=state.options.via == "batch")


def warms_up(state: BatchState) -> bool:
    """Does one row go first, for the provider's prompt cache? As asked (prompt_cache_warmup=), else where the
    provider caches a prefix as long as the one the rows share (not on the simulator, whose lessons time the
    plain fan-out)."""
    if len(state.rows) < 2 or state.options.via == "batch":
        return False
    asked = state.options.prompt_cache_warmup
    if asked is not None:
        return asked
    prefix, minimum = state.shared_prefix, state.cache_minimum
    return not state.endpoint.simulated and minimum is not None and prefix is not None and prefix.tokens >= minimum


def caches_system(state: BatchState) -> bool:
    """Mark the shared system text for the provider's cache (Anthropic's Batch API)? Where more than one line shares
    a prefix at least as long as the provider caches (below it, marking costs bytes and caches nothing)."""
    prefix, minimum = state.shared_prefix, state.cache_minimum
    return (len(state.rows) > 1 and prefix is not None and minimum is not None and prefix.tokens >= minimum
            and state.options.system is not None)


def cache_fields(state: BatchState) -> dict[str, Any]:
    """The request fields for the provider's prompt cache: OpenAI's key of the shared prefix and the retention asked."""
    openai = state.endpoint.provider == "openai"
    return prompt_cache.openai_fields(state.shared_prefix if openai else None, state.cache_minimum,
                                      state.options.prompt_cache_retention)


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
                 price_note: str, tokens_label: str, max_tokens: int | None, max_cost: float | None = None,
                 cache: PromptCacheEstimate | None = None) -> None:
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
        self.cache = cache  # what the provider's prompt cache would do (None: not estimated)

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


@dataclass(frozen=True)
class PromptCacheEstimate:
    """What the provider's prompt cache would do for a batch: the prefix its rows share, the requests expected to
    read it, and what that saves against no caching (None: no cached-input price known)."""

    prefix: prompt_cache.SharedPrefix
    minimum: int | None  # the fewest tokens the provider caches; None: it does not cache here
    warm_up: bool
    readers: int
    saving: float | None

    @property
    def note(self) -> str | None:
        """The layout note: a long static part after the varying one."""
        return self.prefix.layout_note(self.minimum)


def _cache_estimate(state: BatchState, requests: int) -> PromptCacheEstimate | None:
    """Requests that would read the cached prefix: all but the first with the warm-up, else those sent after the
    first wave (a cold fan-out: the first ``concurrency`` all miss); and the saving, at the cached-input price."""
    prefix, minimum, price = state.shared_prefix, state.cache_minimum, state.price
    if prefix is None:
        return None
    warm = warms_up(state)
    cached = minimum is not None and prefix.tokens >= minimum and requests > 1
    wave = state.options.concurrency if isinstance(state.options.concurrency, int) else AUTO_START
    readers = (requests - 1 if warm else max(0, requests - wave)) if cached else 0
    saving = None
    if price is not None and price.cached_input is not None and price._tiered is None:
        saving = readers * prefix.tokens * (price.input - price.cached_input) / MTOK
        if state.options.via == "batch" and price.cache_write is not None and cached:  # one write, billed above input
            saving -= prefix.tokens * (price.cache_write - price.input) / MTOK
    return PromptCacheEstimate(prefix, minimum, warm, readers, saving)


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
    if model is not None:  # the shared prefix, counted as the rows are
        measure_prefix(state, model, tokens.counter)
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
    requests = sum(not r.cached for r in rows)
    return make(rows, model, endpoint, price, note, tokens.label, bound, opts.max_cost, _cache_estimate(state, requests))
