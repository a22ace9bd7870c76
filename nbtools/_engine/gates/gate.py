"""What every gate answers, in the spirit of aiometer's meters: may a request start, it started, it finished.

A gate is anything that holds requests back or learns from how they went: the spending cap, pacing, the
concurrency limiter, the server's own budget, the adaptive controller. The online run keeps them in one
list, in order, and calls the same three methods on each:

- ``await wait(ticket)`` before each attempt: return when the request may go on; False means never (the
  batch stops starting requests). Gates before the limiter are waited on in row order without a slot;
  gates after it, by each request holding its slot.
- ``started(ticket)`` just before the attempt is sent;
- ``finished(ticket, outcome)`` once the attempt ended, for every gate whose ``wait`` let it through (also
  when a later gate's wait was cancelled).

A request may make several attempts; the ticket is the same for all of them, so a gate that acts once per
request (the spending cap) looks at ``ticket.attempt`` and ``outcome.final``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

Status = Literal["ok", "overloaded", "failed", "cancelled"]  # a reply; a 429/503; another failure; stopped
Next = Literal["done", "retry", "wait"]  # over; again holding its slot; again after waiting without one


class Ticket:
    """One request as the gates see it; gates keep what they need between their calls here."""

    __slots__ = ("tokens", "worst", "attempt", "slot", "mark", "generation")

    def __init__(self, tokens: int = 0, worst: float = 0.0) -> None:
        self.tokens = tokens  # the attempt's estimated tokens (prompt + reply)
        self.worst = worst  # the request's worst-case cost, USD
        self.attempt = 1
        self.slot = False  # does it hold a concurrency slot?
        self.mark = (0.0, 0.0)  # the server budget's count of starts when it was sent
        self.generation = 0  # the adaptive controller's generation when it was sent


@dataclass(slots=True)
class AttemptOutcome:
    """How one attempt ended, and what its request does next."""

    status: Status
    next: Next = "done"
    headers: Mapping[str, str] | None = None
    headers_at: float | None = None  # when the headers came (monotonic): a stream's come long before its end
    latency: float | None = None  # seconds from sending to the reply
    tokens: int | None = None  # tokens the reply says it used (prompt + completion), when it says
    cost: float = 0.0  # what the request cost in all, USD (the run sets it on the final outcome)

    @property
    def final(self) -> bool:
        return self.next == "done"


class Gate(Protocol):
    async def wait(self, ticket: Ticket) -> bool: ...

    def started(self, ticket: Ticket) -> None: ...

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None: ...
