"""Image URLs fetched here, before any request, for the providers whose chat endpoint does not fetch them.

- Gemini's OpenAI-compatible endpoint: its documented image part is a ``data:`` URI only
  (ai.google.dev/gemini-api/docs/openai, "Image understanding"), and an https image URL is refused with
  ``[{"error": {"code": 400, "message": "Invalid or unsupported file uri: https://...", "status":
  "INVALID_ARGUMENT"}}]`` (github.com/BoundaryML/baml/issues/1548).
- Anthropic's OpenAI-compatible endpoint takes base64 images (issue 29's survey of the APIs); its Batch API, the
  native Messages API, takes URLs.

The bytes then go as a ``data:`` URI and the reply cache keys on their hash, as for a path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nbtools._engine.blocking import run_blocking
from nbtools._engine.transport import open_transport
from nbtools._engine.transport.base import Transport

URLS_NOT_FETCHED = ("gemini", "anthropic")  # providers whose chat endpoint takes no http(s) image URL


def fetched_here(provider: str, via: str) -> bool:
    """Are ``provider``'s image URLs fetched here? Not for Anthropic's Batch API: its native Messages API takes an
    image block with a URL source (docs.claude.com/en/docs/build-with-claude/vision)."""
    return provider in URLS_NOT_FETCHED and not (provider == "anthropic" and via == "batch")


def fetch_all(urls: Iterable[str], timeout: float) -> dict[str, bytes | str]:
    """Each URL's bytes, or why it could not be fetched (one line), all fetched at once, through the transport
    requests take (aiohttp, or the browser's fetch)."""
    wanted = list(dict.fromkeys(urls))
    return run_blocking(_fetch_all(wanted, timeout)) if wanted else {}


async def _fetch_all(urls: list[str], timeout: float) -> dict[str, bytes | str]:
    transport = open_transport(None, {}, timeout, "")
    try:
        got = await asyncio.gather(*(_fetch(transport, url, timeout) for url in urls))
    finally:
        await transport.close()
    return dict(zip(urls, got, strict=True))


async def _fetch(transport: Transport, url: str, timeout: float) -> bytes | str:
    try:
        async with transport.get(url) as reply:
            if reply.status != 200:
                return f"HTTP {reply.status} {reply.reason or ''}".rstrip()
            return await reply.read()
    except asyncio.TimeoutError:
        return f"no answer within {timeout:g} s"
    except transport.errors as exc:
        return transport.describe(exc)[1] or type(exc).__name__
