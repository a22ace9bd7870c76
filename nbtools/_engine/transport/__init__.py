"""The transport seam: "send this request; give me the status, headers and body, or its chunks as they arrive".

Everything above it (gates, retries, failure classes, streaming, cost, cache) is the same code whichever
transport carries the bytes: aiohttp on CPython (the default, aio.py), the browser's fetch under Pyodide
(fetch.py), or direct calls into an in-process server (local.py: the simulator, with no socket at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbtools._engine.transport.base import IN_BROWSER, Transport

if not IN_BROWSER:  # on CPython aiohttp comes with `import nbtools`, not inside a user's first batch
    from nbtools._engine.transport.aio import AiohttpTransport

# Anthropic answers a page's request only with this header (its CORS rule); sent from a browser only.
_BROWSER_HEADERS = {"anthropic": {"anthropic-dangerous-direct-browser-access": "true"}}


def open_transport(local: Any, headers: Mapping[str, str], timeout: float, provider: str) -> Transport:
    """In-process calls to ``local`` when a server in this process answers the URL (the transport='in-process'
    option started one), else the browser's fetch in a browser, else aiohttp."""
    if local is not None:
        from nbtools._engine.transport.local import LocalTransport

        return LocalTransport(local, timeout)
    if IN_BROWSER:
        from nbtools._engine.transport.fetch import FetchTransport

        return FetchTransport({**headers, **_BROWSER_HEADERS.get(provider, {})}, timeout)
    return AiohttpTransport(headers, timeout)
