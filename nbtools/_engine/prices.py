"""What a token costs: the user's price, else Pydantic's genai-prices data, else unknown.

genai-prices ships its price data inside the package (per provider and model, with history); it
is only read here, never updated at run time (its ``UpdatePrices`` downloader is opt-in and never
started). Local servers (the simulator, Ollama, vLLM, anything on this machine) cost nothing
unless ``price=`` says otherwise. An unknown price is ``None``, never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from nbtools._engine.endpoints import Endpoint, simulated_price

MTOK = 1_000_000
_LOCAL_PROVIDERS = ("sim", "ollama", "vllm")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
# Our provider names -> genai-prices provider ids (a custom base_url is matched by its URL instead).
_LIBRARY_IDS = {"openai": "openai", "xai": "x-ai", "anthropic": "anthropic"}


@dataclass(frozen=True)
class Price:
    """USD per million tokens: ``input``, ``output``, ``cached_input`` (prompt tokens read from the provider's
    prompt cache; None: billed as ``input``) and ``cache_write`` (prompt tokens written to it, where the provider
    charges for that: Anthropic; None: billed as ``input``). ``source`` says where the figures came from."""

    input: float
    output: float
    cached_input: float | None = None
    source: str = "price="
    _tiered: Any = None  # genai-prices' ModelPrice when rates change with prompt size: it does the sum
    cache_write: float | None = None
    hour_writes: bool = False  # writes are kept an hour: billed at twice ``input`` (Anthropic's 1-hour cache)

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None, cached_tokens: int | None = None,
             written_tokens: int | None = None) -> float:
        """USD for one reply's usage (missing counts count as 0); ``prompt_tokens`` holds the cached and written ones."""
        prompt, completion, cached, written = prompt_tokens or 0, completion_tokens or 0, cached_tokens or 0, written_tokens or 0
        listed_write = self.input if self.cache_write is None else self.cache_write
        # genai-prices lists the 5-minute write rate; an hour costs twice the input rate (docs.claude.com/en/docs/
        # build-with-claude/prompt-caching, "Pricing"): the difference, at the base tier's rates
        extra = written * (2 * self.input - listed_write) / MTOK if self.hour_writes else 0.0
        if self._tiered is not None:
            return _library_cost(self._tiered, prompt, completion, cached, written) + extra
        read_rate = self.input if self.cached_input is None else self.cached_input
        return extra + ((prompt - cached - written) * self.input + cached * read_rate + written * listed_write
                        + completion * self.output) / MTOK

    @property
    def free(self) -> bool:
        return self.input == 0 and self.output == 0 and not self.cached_input and self._tiered is None

    def __str__(self) -> str:
        return f"${self.input:g} in / ${self.output:g} out per 1M tokens ({self.source})"


def usd(amount: float) -> str:
    """Dollars for people: cents from $1 up, three significant digits below (a reply may cost $0.0000120)."""
    if amount >= 1 or amount == 0:
        return f"${amount:,.2f}"
    return f"${amount:.{max(2, 2 - math.floor(math.log10(abs(amount))))}f}"


def is_local(endpoint: Endpoint) -> bool:
    """The simulator, Ollama, vLLM, or a custom base_url on this machine (llama.cpp...). A paid provider
    named explicitly (provider='openai' with a local base_url: a proxy) keeps that provider's prices."""
    if endpoint.simulated or endpoint.provider in _LOCAL_PROVIDERS:
        return True
    host = urlsplit(endpoint.base_url).hostname or ""
    return endpoint.provider == "custom" and (host in _LOOPBACK or host.startswith("127."))


# Service tiers priced apart: OpenAI's flex "is priced at Batch API rates" (platform.openai.com/docs/guides/
# flex-processing). Groq's flex costs the on-demand price (console.groq.com/docs/flex-processing).
_BATCH_RATES_TIERS = {("openai", "flex")}


def price_for(endpoint: Endpoint, model: str | None, user_price: tuple[float, float] | None, *,
              batch_api: bool = False, tier: str | None = None) -> Price | None:
    """The price of ``model`` at ``endpoint``; None when nobody knows it.

    ``batch_api``: the provider's batch-API rates (genai-prices' ``processing: batch`` context); ``tier``:
    the service tier asked for, which the source names (flex at OpenAI: the batch rates).
    """
    if user_price is not None:
        return Price(user_price[0], user_price[1], source="price=")
    listed = simulated_price(model) if endpoint.simulated and model is not None else None
    if listed is not None:  # the simulator's named models, so comparing their costs means something
        return Price(*listed, source=f"made-up list price of the simulated {model}")
    if is_local(endpoint):
        return Price(0.0, 0.0, source="local server: free; price= to set one")
    if model is None:
        return None
    if tier is not None and not batch_api:
        at_batch_rates = (endpoint.provider, tier) in _BATCH_RATES_TIERS
        price = _from_library(endpoint, model, at_batch_rates)
        if price is None:
            return None
        label = f", {tier} tier" + (": Batch API rates" if at_batch_rates else "")
        return replace(price, source=price.source.replace(", batch API", "") + label)
    return _from_library(endpoint, model, batch_api)


def _from_library(endpoint: Endpoint, model: str, batch_api: bool) -> Price | None:
    try:
        from genai_prices import __version__, data_snapshot, types
    except ImportError:  # Python 3.10, or not installed: prices are unknown, and say so
        return None
    snapshot = data_snapshot.get_snapshot()
    provider_id = _LIBRARY_IDS.get(endpoint.provider)
    try:
        if provider_id is not None:
            _, info = snapshot.find_provider_model(model, None, provider_id, None)
        else:  # a custom base_url: OpenRouter, Groq, Together... are known by their API URL
            _, info = snapshot.find_provider_model(model, None, None, endpoint.base_url)
    except LookupError:
        return None
    context = {"processing": "batch"} if batch_api else None
    prices = info.get_prices(datetime.now(timezone.utc), context)
    rates = [getattr(prices, key, None) for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")]
    tiered = any(isinstance(rate, types.TieredPrices) for rate in rates)
    base = [None if r is None else float(r.base if isinstance(r, types.TieredPrices) else r) for r in rates]
    if base[0] is None or base[1] is None:
        return None  # priced by something else (per request, per second): not a token price
    source = f"genai-prices {__version__}: {info.id}" + (", batch API" if batch_api else "")
    if tiered:  # the rates shown are the base tier's; cost() lets the library pick the tier
        return Price(base[0], base[1], base[2], source + ", tiered by prompt size", _tiered=prices, cache_write=base[3])
    return Price(base[0], base[1], base[2], source, cache_write=base[3])


def _library_cost(prices: Any, prompt: int, completion: int, cached: int, written: int = 0) -> float:
    from genai_prices import Usage

    usage = Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached or None,
                  cache_write_tokens=written or None)
    return float(prices.calc_price(usage)["total_price"])
