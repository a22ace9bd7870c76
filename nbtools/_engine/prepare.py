"""What every engine does before the first request: find the model, and price the batch."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from nbtools._base.errors import ConfigError, EndpointError
from nbtools._base.options import BatchOptions
from nbtools._base.prompts import Prompt, normalize_prompts
from nbtools._engine.client import ChatClient
from nbtools._engine.endpoints import PROFILES, Endpoint, resolve_endpoint
from nbtools._engine.prices import price_for
from nbtools._engine.rows import RequestResult
from nbtools._engine.state import BatchState, State

_NOT_CHAT = re.compile(r"embed|rerank|whisper|tts|dall-e|moderation|bge-|minilm", re.IGNORECASE)


async def first_chat_model(client: ChatClient) -> str:
    """The first model the endpoint lists that can chat (local servers list embedding models too)."""
    models = await client.list_models()
    if not models:
        raise EndpointError(f"no model given and {client.endpoint.host} lists none: pass model= (magic: -m MODEL)")
    return next((m for m in models if not _NOT_CHAT.search(m)), models[0])


def price_batch(result: BatchState, model: str) -> None:
    """The batch's price (or why it is unknown); with max_cost, refuse to run without a price or
    without a bound on each reply's length."""
    options = result.options
    price = result.price = price_for(result.endpoint, model, options.price,
                                     batch_api=options.via == "batch",  # a Batch API job has its own rates
                                     tier=options.tier)
    if price is None:
        result.price_note = (f"no price known for {model} at {result.endpoint.host}: "
                             "pass price=(input, output) in USD per million tokens (magic: --price 0.15,0.60)")
    else:
        result.price_note = price.source
    if options.max_cost is None:
        return
    if price is None:
        raise ConfigError(f"max_cost needs a price, and {result.price_note}")
    if not price.free and options.reply_bound is None:
        raise ConfigError(f"max_cost={options.max_cost:g} needs max_tokens= (the longest reply, so the worst "
                          "case of each request is known): e.g. max_tokens=512 (magic: --max-tokens 512)")


def prepare_batch(prompts: Prompt | Iterable[Prompt],
                  make: Callable[[list[RequestResult], BatchOptions, Endpoint, str | None], State], *,
                  api_key: str | None = None, on_result: Callable[[RequestResult], Any] | None = None,
                  **options: Any) -> State:
    """Validate everything and build the (not yet started) batch with ``make``. Raises ConfigError on bad input."""
    if on_result is not None and not callable(on_result):
        raise ConfigError(f"on_result={on_result!r} must be a function taking one finished row: e.g. on_result=print")
    try:
        opts = BatchOptions(**options)
    except TypeError as exc:  # an unknown keyword
        raise ConfigError(f"{exc}: see help(nbtools.batch) for the options") from None
    items = normalize_prompts(prompts)
    endpoint = resolve_endpoint(opts.provider, opts.base_url, api_key, opts.api_key_env)
    profile = PROFILES.get(endpoint.provider)
    if opts.tier is not None and profile is not None and not endpoint.simulated and opts.tier not in profile.tiers:
        offered = f"it offers {', '.join(map(repr, profile.tiers))}" if profile.tiers else "it has no service tiers"
        raise ConfigError(f"tier={opts.tier!r} is not offered by provider {endpoint.provider!r} ({offered}): "
                          "leave tier out (magic: --tier)")
    repeat = opts.repeat
    rows = [RequestResult(i, items[i // repeat]) for i in range(len(items) * repeat)]
    state = make(rows, opts, endpoint, opts.model or endpoint.default_model)
    if state.model is not None:
        price_batch(state, state.model)  # a cap that cannot work fails before anything is shown
    return state
