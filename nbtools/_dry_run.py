"""A dry run: what a batch would cost, with nothing sent.

Per row and in total: the prompt tokens (counted with the model's tokenizer where one is installed,
else estimated, and labelled as such), the worst case from max_tokens, and the cost range from a
reply of no tokens to one of max_tokens. Rows the reply cache would answer cost nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nbtools._base.errors import ConfigError
from nbtools._base.prompts import Prompt, normalize_prompts
from nbtools._engine.cache import ReplyCache, SampleKeys, cache_is_on
from nbtools._engine.endpoints import Endpoint
from nbtools._engine.prepare import prepare_batch
from nbtools._engine.prices import Price, price_for
from nbtools._engine.state import BatchState
from nbtools._engine.structured import form_for
from nbtools._engine.tokens import prompt_counter
from nbtools._several import per_model
from nbtools._views.cost_estimate import dry_run_html, dry_run_text, dry_runs_html, dry_runs_text

NO_KEY = "(dry run: no key needed)"


@dataclass(frozen=True)
class DryRunRow:
    index: int
    prompt: str  # the prompt as one line (its last user message)
    prompt_tokens: int
    max_completion_tokens: int | None  # the worst case: max_tokens, if set
    cost_low: float | None  # a reply of no tokens; None: price unknown
    cost_high: float | None  # a reply of max_tokens; None: price unknown or no max_tokens
    cached: bool  # the reply cache holds the answer: no request, no cost


class DryRun:
    """What a batch would send and cost. Renders itself (text and HTML); ``.to_dicts()`` per row."""

    def __init__(self, rows: list[DryRunRow], model: str | None, endpoint: Endpoint, price: Price | None,
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
        self.cost_low = None if price is None else sum(r.cost_low or 0.0 for r in sent)
        self.cost_high = None if price is None or max_tokens is None else sum(r.cost_high or 0.0 for r in sent)

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

    def __repr__(self) -> str:
        return dry_run_text(self)

    def _repr_html_(self) -> str:
        return dry_run_html(self)


class DryRuns:
    """A dry run per model (``models=[...]``): what the same prompts would cost on each, side by side."""

    def __init__(self, by_model: dict[str, DryRun]) -> None:
        self.by_model = by_model

    def __repr__(self) -> str:
        return dry_runs_text(self)

    def _repr_html_(self) -> str:
        return dry_runs_html(self)


def dry_run(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None, **options: Any) -> DryRun | DryRuns:
    """Same arguments as ``batch()``; sends nothing and returns what the batch would cost (with
    ``models=[...]``, a DryRuns: what it would cost on each model)."""
    if options.get("models") is not None:
        items = normalize_prompts(prompts)  # read once (an iterator), used per model
        runs: dict[str, DryRun] = {}
        for item, settings, key in per_model(options, api_key):
            try:
                one = dry_run(items, api_key=key, **settings)
            except ConfigError as exc:
                raise ConfigError(f"models item {item.label!r}: {exc}") from None
            assert isinstance(one, DryRun)  # an item's settings hold no models
            runs[item.label] = one
        return DryRuns(runs)
    if api_key is None and options.get("api_key_env") is None:
        api_key = NO_KEY  # nothing is sent, so a provider's key need not be set to see its prices
    result = prepare_batch(prompts, BatchState, api_key=api_key, **options)  # as a real run: the same checks and rows
    opts, endpoint, model = result.options, result.endpoint, result.model
    if model is None:  # prepare() prices the batch once its model is known
        result.price = price_for(endpoint, None, opts.price)
    price = result.price
    note = result.price_note or (price.source if price is not None else
                                 "no model given (the server would be asked for one): pass model=")
    counter = prompt_counter(model)
    bound = opts.reply_bound
    form = form_for(endpoint) if opts.schema is not None else None
    bodies = [opts.request_body(opts.messages(row.prompt), model or "", form) for row in result.rows]
    # The schema is part of every prompt (a provider counts response_format in the prompt's tokens).
    extra = counter([{"role": "system", "content": json.dumps(bodies[0]["response_format"])}]) \
        if bodies and "response_format" in bodies[0] else 0
    cached: set[int] = set()
    if cache_is_on(opts.cache, endpoint) and model is not None:  # reading the local cache sends nothing
        samples = SampleKeys(endpoint.base_url, opts.repeat, opts.dedupe)
        keys = [samples.key(row.index, body) for row, body in zip(result.rows, bodies, strict=True)]
        cache = ReplyCache()
        try:
            hits = cache.get_many(keys)
        finally:
            cache.close()
        cached = {i for i, key in enumerate(keys) if key in hits}
    rows = []
    for row, body in zip(result.rows, bodies, strict=True):
        tokens = counter(body["messages"]) + extra
        low = None if price is None else price.cost(tokens, 0)
        high = None if price is None or bound is None else price.cost(tokens, bound)
        rows.append(DryRunRow(row.index, row.prompt_text, tokens, bound, low, high, row.index in cached))
    return DryRun(rows, model, endpoint, price, note, counter.label, bound, opts.max_cost)
