"""One row per request: its prompt, reply or error, usage, attempts and times, filled as the batch runs."""

from __future__ import annotations

from typing import Any

from nbtools.prompts import Prompt

__all__ = ["RequestResult", "PENDING", "RUNNING", "OK", "ERROR", "CANCELLED", "NOT_SENT", "DONE_STATUSES"]

PENDING, RUNNING, OK, ERROR, CANCELLED = "pending", "running", "ok", "error", "cancelled"
NOT_SENT = "not sent"  # never sent: the batch stopped first (a bad key, the spending cap); a re-run sends it
DONE_STATUSES = frozenset({OK, ERROR, CANCELLED, NOT_SENT})


class RequestResult:
    """One request: its prompt, reply or error, usage, attempts and times.

    Times are seconds since the batch started: ``queued`` (submitted), ``started`` (first attempt
    sent), ``first_token`` (streaming only), ``finished``. A failed row keeps ``status_code`` and
    ``error_kind`` (see nbtools.failures); ``partial`` is what arrived of a reply that was cut off.
    """

    # __slots__: a batch of 100,000 rows must stay small in memory.
    __slots__ = (
        "index", "prompt", "text", "error", "error_kind", "status_code", "partial", "model", "prompt_tokens",
        "completion_tokens", "cached_tokens", "cost", "finish_reason", "attempts", "waits", "status", "queued", "started",
        "sent", "first_token", "finished", "cached", "label", "_parts",
    )

    def __init__(self, index: int, prompt: Prompt, queued: float = 0.0) -> None:
        self.index = index
        self.prompt = prompt
        self.text: str | None = None
        self.error: str | None = None
        self.error_kind: str | None = None
        self.status_code: int | None = None
        self.partial: str | None = None
        self.model: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.attempts = 0
        self.waits = 0  # attempts a rate limit or overload (429/503/529) sent back to wait: not retries
        self.status = PENDING
        self.queued = queued
        self.started: float | None = None
        self.sent: float | None = None  # when its last attempt went out (after any rate-limit wait or backoff)
        self.first_token: float | None = None
        self.finished: float | None = None
        self.cached = False  # answered from the cache, or by an identical request in the same batch
        self._parts: list[str] | None = None  # streamed text so far, while running
        self.cached_tokens: int | None = None  # prompt tokens the provider read from its prompt cache
        self.cost: float | None = None  # USD; None: price or usage unknown; 0.0 when no request was made
        self.label: str | None = None  # in a several-model batch: which model (endpoint) it went to

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def streaming(self) -> bool:
        """True while a streamed reply is arriving."""
        return self._parts is not None

    @property
    def partial_text(self) -> str:
        """The reply so far: the streamed text of a running request, else ``text``."""
        if self._parts is not None:
            return "".join(self._parts)
        return self.text or ""

    def begin_stream(self) -> None:
        """A new attempt streams: forget what an earlier one sent."""
        self._parts, self.first_token = [], None

    def add_text(self, delta: str, now: float) -> None:
        if self.first_token is None:
            self.first_token = now
        assert self._parts is not None
        self._parts.append(delta)

    def end_stream(self) -> None:
        self._parts = None

    @property
    def queue_wait(self) -> float | None:
        return None if self.started is None else self.started - self.queued

    @property
    def ttft(self) -> float | None:
        """Time to first token (streaming), from the start of the request."""
        return None if self.first_token is None or self.started is None else self.first_token - self.started

    @property
    def latency(self) -> float | None:
        return None if self.finished is None or self.started is None else self.finished - self.started

    @property
    def usage(self) -> dict[str, int | None]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    @property
    def prompt_text(self) -> str:
        """The prompt as one line of text (the last user message of a chat prompt)."""
        if isinstance(self.prompt, str):
            return self.prompt
        for message in reversed(self.prompt):
            if message.get("role") == "user":
                return str(message.get("content"))
        return str(self.prompt[-1].get("content"))

    def to_dict(self) -> dict[str, Any]:
        label = {"label": self.label} if self.label is not None else {}  # only in several-model batches
        return {
            "index": self.index, **label, "prompt": self.prompt, "text": self.text, "error": self.error,
            "error_kind": self.error_kind, "status_code": self.status_code, "partial": self.partial,
            "status": self.status, "model": self.model, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens, "cost": self.cost,
            "finish_reason": self.finish_reason,
            "attempts": self.attempts, "waits": self.waits, "cached": self.cached, "queued": self.queued, "started": self.started,
            "first_token": self.first_token, "finished": self.finished, "queue_wait": self.queue_wait,
            "ttft": self.ttft, "latency": self.latency,
        }

    def __repr__(self) -> str:
        text = self.partial_text
        body = f"error={self.error!r}" if self.error else f"text={text[:57] + '...' if len(text) > 60 else text!r}"
        lat = f", latency={self.latency:.3f}s" if self.latency is not None else ""
        return f"RequestResult(#{self.index} {self.status}, {body}{lat}, attempts={self.attempts})"
