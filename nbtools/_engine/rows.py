"""One row per request: its prompt, reply or error, usage, attempts and times, filled as the batch runs."""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any

from nbtools._base.attachments import Attachment, attachments_of
from nbtools._base.judging import Verdict
from nbtools._base.prompts import Prompt
from nbtools._base.schemas import InvalidOutput, Schema
from nbtools._engine import failures
from nbtools._engine.replies import text_of

if TYPE_CHECKING:
    from nbtools._engine.prices import Price
    from nbtools._engine.replies import Completion

PENDING, RUNNING, OK, ERROR, CANCELLED = "pending", "running", "ok", "error", "cancelled"
NOT_SENT = "not sent"  # never sent: the batch stopped first (a bad key, the spending cap); a re-run sends it
DONE_STATUSES = frozenset({OK, ERROR, CANCELLED, NOT_SENT})

# A row's fields, listed once: what it stores (and exports, in this order), then what is derived from them.
FIELDS = (
    "index", "prompt", "text", "error", "error_kind", "status_code", "partial", "status", "model", "served_model",
    "system_fingerprint", "request_id", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost", "finish_reason", "data", "attempts", "waits", "cached", "queued", "started",
    "first_token", "finished",
)
DERIVED = ("queue_wait", "ttft", "latency")
_LABEL = ("label",)  # stored; exported (after the index) only in several-model batches
_GRADED = ("expected", "checks", "check_error", "judge")  # with expected= / checks=: exported as columns of their own
_INTERNAL = ("sent", "_parts")  # stored, not exported: when the last attempt went out; the stream so far
_EXPORTED = FIELDS + DERIVED
_export = attrgetter(*_EXPORTED)  # one call for all: to_pandas() exports 100,000 rows
_IDENTITY = ("index", "prompt", "queued")  # which row it is and when it was asked: never copied from another


class RequestResult:
    """One request: its prompt, reply or error, usage, attempts and times.

    Times are seconds since the batch started: ``queued`` (submitted), ``started`` (first attempt
    sent), ``first_token`` (streaming only), ``finished``. A failed row keeps ``status_code`` and
    ``error_kind`` (see nbtools.failures); ``partial`` is what arrived of a reply that was cut off.
    """

    # __slots__: a batch of 100,000 rows must stay small in memory.
    __slots__ = FIELDS + _INTERNAL + _LABEL + _GRADED

    def __init__(self, index: int, prompt: Prompt, queued: float = 0.0) -> None:
        self.index = index
        self.prompt = prompt
        self.text: str | None = None
        self.error: str | None = None
        self.error_kind: str | None = None
        self.status_code: int | None = None
        self.partial: str | None = None
        self.model: str | None = None
        self.served_model: str | None = None  # the model id the reply named (e.g. a dated snapshot behind an alias)
        self.system_fingerprint: str | None = None  # the backend configuration that answered, where the provider says
        self.request_id: str | None = None  # the provider's id of the request (its request-id header, or the reply's id)
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
        self.cache_write_tokens: int | None = None  # prompt tokens it wrote to its prompt cache, where it bills them
        self.reasoning_tokens: int | None = None  # of completion_tokens, those the model spent thinking
        self.cost: float | None = None  # USD; None: price or usage unknown; 0.0 when no request was made
        self.data: dict[str, Any] | None = None  # with schema=: the validated reply
        self.label: str | None = None  # in a several-model batch: which model (endpoint) it went to
        self.expected: Any = None  # with expected=: this prompt's reference answer
        self.checks: dict[str, bool | float | None] | None = None  # with checks=: each check's value, once graded
        self.check_error: str | None = None  # which checks raised on this row, and what
        self.judge: Verdict | None = None  # with judge=: the judge's verdict on this reply

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

    def refuse(self, kind: str, message: str) -> None:
        """This row cannot be sent (its image is missing, say): its error, before the batch starts."""
        self.status, self.error_kind, self.error = ERROR, kind, message

    @property
    def attachments(self) -> list[Attachment]:
        return attachments_of(self.prompt)

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
        """The prompt as one line of text (the last user message of a chat prompt, its text parts)."""
        if isinstance(self.prompt, str):
            return self.prompt
        for message in reversed(self.prompt):
            if message.get("role") == "user":
                return text_of(message.get("content"))
        return text_of(self.prompt[-1].get("content"))

    def to_dict(self) -> dict[str, Any]:
        values = dict(zip(_EXPORTED, _export(self), strict=True))
        found = self.attachments
        if found:  # named (path, URL or hash), never embedded; the prompt as its text
            values["prompt"] = self.prompt_text
            values = {**values, "images": [a.name for a in found]}
        if self.label is None:
            return values
        return {"index": values.pop("index"), "label": self.label, **values}  # only in several-model batches

    def __repr__(self) -> str:
        text = self.partial_text
        body = f"error={self.error!r}" if self.error else f"text={text[:57] + '...' if len(text) > 60 else text!r}"
        lat = f", latency={self.latency:.3f}s" if self.latency is not None else ""
        return f"RequestResult(#{self.index} {self.status}, {body}{lat}, attempts={self.attempts})"


def fill_reply(row: RequestResult, completion: Completion, model: str | None, price: Price | None, *,
               charged: bool = True, schema: Schema | None = None) -> None:
    """Fill ``row`` from a reply, whichever engine got it (online, Batch API, cache, job store).

    ``model`` is the batch's model name: rows share that string instead of keeping 100,000 equal copies.
    ``charged=False``: no request was made for this row (a cached or shared reply, a stored job): it costs 0.
    ``schema``: the reply is then checked against it (``row.data``, or an error of its own kind, text kept).
    """
    row.text = completion.text
    row.model = model if completion.model in (None, model) else completion.model
    row.served_model = row.model if completion.model is not None else None
    row.system_fingerprint, row.request_id = completion.system_fingerprint, completion.request_id
    row.prompt_tokens = completion.prompt_tokens
    row.completion_tokens = completion.completion_tokens
    row.cached_tokens = completion.cached_tokens
    row.cache_write_tokens = completion.cache_write_tokens
    row.reasoning_tokens = completion.reasoning_tokens
    row.finish_reason = completion.finish_reason
    row.error = row.error_kind = row.status_code = row.partial = None  # an earlier attempt's failure is history
    row.status = OK
    if not charged:
        row.cost = 0.0
    elif price is not None:  # cost from the usage the server returned
        if completion.prompt_tokens is not None and completion.completion_tokens is not None:
            row.cost = price.cost(completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens,
                                  completion.cache_write_tokens)
        elif price.free:
            row.cost = 0.0  # no usage, but nothing costs anything here
    if schema is not None:
        _read_output(row, schema, completion)


def _read_output(row: RequestResult, schema: Schema, completion: Completion) -> None:
    row.data = None
    if completion.refusal:
        _failed(row, failures.REFUSAL, f"the model refused: {completion.refusal}")
        if not row.text:
            row.text = completion.refusal
        return
    if completion.finish_reason in ("length", "max_tokens"):  # OpenAI's finish_reason, Anthropic's stop_reason
        _failed(row, failures.LENGTH, "the reply was cut by max_tokens (finish_reason 'length') before the JSON "
                "was whole: raise max_tokens")
        return
    try:
        row.data = schema.validate(row.text or "")
    except InvalidOutput as exc:
        _failed(row, failures.INVALID_OUTPUT, f"the reply does not match the schema: {exc}")


def _failed(row: RequestResult, kind: str, message: str) -> None:
    row.status, row.error_kind, row.error = ERROR, kind, message


def copy_outcome(source: RequestResult, target: RequestResult) -> None:
    """Everything ``source`` learnt by being sent, onto ``target`` (the same request in another batch)."""
    for name in FIELDS:
        if name not in _IDENTITY:
            setattr(target, name, getattr(source, name))
    target.sent = source.sent
