"""Server-sent events, as OpenAI-compatible servers send them, decoded incrementally.

Written for what real servers do, not only what the spec says: lines may end in ``\\n``, ``\\r\\n``
or ``\\r``; a line may be longer than any buffer a line reader would allow (a proxy that sends the
whole reply as one chunk); a JSON chunk may span several ``data:`` lines; comments (``: ping``),
``event:`` and ``id:`` lines come and go; and servers report failures mid-stream as a data chunk
with an ``"error"`` key (vLLM), an ``event: error`` (Anthropic-style) or an ``error:`` line (llama.cpp).
"""

from __future__ import annotations

import json
from typing import Any

DONE = object()  # the ``data: [DONE]`` sentinel


class StreamError(Exception):
    """The server said, inside the stream, that the request failed; ``status`` if it gave an HTTP-like code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SSEDecoder:
    """``feed(bytes)`` returns the events completed so far: parsed JSON chunks, or ``DONE``.

    Raises StreamError when the server reports an error, ValueError on data that is not JSON.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._pending: list[bytes] = []  # pieces of a line longer than one chunk: joined once it ends
        self._data: list[str] = []  # data lines of the event being read
        self._event = ""
        self._first = True

    def feed(self, chunk: bytes) -> list[Any]:
        if b"\n" not in chunk and b"\r" not in chunk:  # still inside one line: keep it, scan nothing twice
            self._pending.append(chunk)
            return []
        if self._pending:
            chunk = b"".join(self._pending) + chunk
            self._pending = []
        buffer = self._buffer + chunk
        if self._first and buffer:
            self._first = False
            buffer = buffer.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, which the spec allows
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
            # A lone \r is a line end too, unless it is the last byte: its \n may be in the next chunk.
            tail = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(tail)].replace(b"\r", b"\n") + tail
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[Any] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[Any]:
        """The stream ended: whatever event was still being read."""
        events = self.feed(b"\n") if self._buffer or self._pending else []
        if self._data:
            events.append(self._dispatch(strict=True))
        return [e for e in events if e is not None]

    def _line(self, line: str) -> Any:
        if not line:
            return self._dispatch(strict=True) if self._data else None
        if line.startswith(":"):
            return None  # a comment / keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
            # Most servers put one JSON chunk on one line: hand it over without waiting for the blank line.
            return self._dispatch(strict=False)
        if name == "event":
            self._event = value.strip()
        elif name == "error":  # llama.cpp's server
            raise _error(value)
        return None

    def _dispatch(self, *, strict: bool) -> Any:
        text = "\n".join(self._data)
        if text.strip() == "[DONE]":
            self._data, self._event = [], ""
            return DONE
        if not text.strip():  # an event with no data: the spec says to ignore it
            if strict:
                self._data, self._event = [], ""
            return None
        try:
            chunk = json.loads(text)
        except ValueError:
            if strict:
                raise ValueError("the stream carried a chunk that is not JSON") from None
            return None  # a JSON object continued on the next data: line
        event, self._data, self._event = self._event, [], ""
        if event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
            raise _error(chunk)
        return chunk


def error_message(payload: Any) -> tuple[str | None, Any]:
    """(message, code) of an error body, in the shapes servers use: {"error": {"message", "code"}} (OpenAI,
    vLLM), {"error": "text"} (Ollama, TGI), {"message"} or {"detail"} (FastAPI), Gemini's list of one such
    object; (None, None) if none."""
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None, None
    inner = payload.get("error") or payload
    if isinstance(inner, dict):
        message = inner.get("message") or inner.get("detail")
        return (str(message) if message else None), inner.get("code")
    return str(inner), None


def _error(error: Any) -> StreamError:
    """From an error chunk (parsed) or an ``error:`` line (text, usually JSON)."""
    if isinstance(error, str):
        try:
            error = json.loads(error)
        except ValueError:
            return StreamError(error.strip())
    message, code = error_message(error)
    status = code if isinstance(code, int) and 100 <= code < 600 else None
    return StreamError(message or str(error), status)
