"""A built-in OpenAI-compatible chat-completions simulator.

A real HTTP server (aiohttp) with realistic latency, SSE streaming, capacity
limits, rate limits and faults; or the same simulator in-process (``serve_in_process``: no socket, no thread),
which is what a browser kernel runs. It is the default backend when no API key is
set, the target of the tests (which read its counters) and of the benchmarks::

    from nbtools.sim import serve
    with serve(latency=0.2, rpm=600) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="anything")
        ...
        server.stats()["peak_in_flight"]

Or from a shell: ``python -m nbtools.sim --port 8000 --latency 0.2``.

Routes: ``POST /v1/chat/completions``, ``POST /v1/responses`` (the Responses API, plain and streamed: the
same replies, limits and faults), ``GET /v1/models``, ``GET /sim/stats``,
``POST /sim/reset`` (zero the counters, restart the random stream, forget flaky
counts and rate-limit windows), ``POST /sim/config`` (JSON object of knob
changes, applied live; answers the whole config).

Batch APIs (``sim/batches.py``), in compressed time (knobs ``batch_delay``, ``batch_expire``,
``batch_max_requests``): OpenAI's ``POST /v1/files``, ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``; Anthropic's ``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}``, ``.../cancel``, ``.../results``; ``GET /sim/batches`` (counters). A
directive such as ``[[sim:500]]`` fails that line in the job's result file.

Directives, written anywhere in the last user message, act on that request only
(they override the random ``fail_*`` draws):

- ``[[sim:500]]``, ``[[sim:503]]``: answer that error at once.
- ``[[sim:429]]``: answer 429 with ``retry-after`` = the ``retry_after`` knob.
- ``[[sim:reset]]``: close the connection (TCP RST) before any response byte.
- ``[[sim:disconnect]]``: streaming: send about half the chunks, then hang up;
  otherwise send the headers and half the body, then hang up.
- ``[[sim:slow]]``: delay the first byte by the ``slow_delay`` knob.
- ``[[sim:flaky=K]]``: the first K arrivals of that exact message content get
  503, later ones succeed.
- ``[[sim:latency=0.2]]``: this request takes exactly 0.2 s.
- ``[[sim:malformed]]``: 200 with invalid JSON (or an invalid SSE event).
- ``[[sim:empty]]``: 200 with ``"choices": []``.
- ``[[sim:nousage]]``: no ``usage`` (nor usage chunk when streaming).
- ``[[sim:invalid]]``: with ``response_format`` json_schema, a reply without the schema's first field.
- ``[[sim:refuse]]``: with ``response_format`` json_schema, a refusal (``message.refusal``, no content).

An unknown directive is answered with 400, so typos do not pass silently.

The ``refuse`` knob makes models refuse request fields as reasoning models do: ``refuse=("temperature",)``
answers any request with a temperature other than 1 with OpenAI's 400 ``unsupported_value``;
``"sim-large:max_tokens"`` makes one model ask for ``max_completion_tokens`` instead.
"""

from nbtools.sim.background import SimServer, is_simulator, serve, shared_server
from nbtools.sim.config import SimConfig
from nbtools.sim.local import LocalSim, httpx_transport, local_server, serve_in_process

__all__ = ["LocalSim", "SimConfig", "SimServer", "httpx_transport", "is_simulator", "local_server", "serve",
           "serve_in_process", "shared_server"]
