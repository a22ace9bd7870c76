"""Request and token budgets per minute, spread evenly: a client that never bursts above them.

Each request reserves its share of the budget on a virtual clock (GCRA): ``60 / rpm`` seconds for
the request, ``tokens * 60 / tpm`` seconds for its estimated tokens. Starts are spaced by those
reservations from the very first request, so there is no initial burst. Token estimates are made
before sending and corrected with the real usage after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from nbtools._engine.gates.gate import AttemptOutcome, Ticket
from nbtools._engine.replies import text_of


def estimate_prompt_tokens(messages: list[Mapping[str, Any]]) -> int:
    """About 4 characters a token, plus a few tokens of framing per message."""
    return sum(len(text_of(m.get("content", ""))) // 4 + 4 for m in messages)


class Pacer:
    """A gate: each attempt waits for its share of the budget; a reply's usage corrects the token clock."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._requests_free_at = 0.0  # monotonic time from which the next request may start
        self._tokens_free_at = 0.0
        self.held_back = False  # did the budget make the last first attempt wait?

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def reserve(self, tokens: int) -> float:
        """Book the next start and return how many seconds to wait for it."""
        now = time.monotonic()
        start = now
        if self.rpm is not None:
            start = max(start, self._requests_free_at)
        if self.tpm is not None:
            start = max(start, self._tokens_free_at)
        if self.rpm is not None:
            self._requests_free_at = start + 60.0 / self.rpm
        if self.tpm is not None:
            self._tokens_free_at = start + tokens * 60.0 / self.tpm
        return start - now

    async def pace(self, tokens: int) -> bool:
        """Wait for the next start; True if the budget made us wait."""
        delay = self.reserve(tokens)
        if delay > 0:
            await asyncio.sleep(delay)
        return delay > 0

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token clock once the real usage is known (more used: later; less: sooner)."""
        if self.tpm is not None:
            self._tokens_free_at += (actual - estimated) * 60.0 / self.tpm

    # -- the gate ------------------------------------------------------------------------------------
    async def wait(self, ticket: Ticket) -> bool:
        if self.active:
            waited = await self.pace(ticket.tokens)
            if ticket.attempt == 1:  # what first starts wait for tells whether more slots would be used
                self.held_back = waited
        return True

    def started(self, ticket: Ticket) -> None:
        pass

    def finished(self, ticket: Ticket, outcome: AttemptOutcome) -> None:
        if outcome.status == "ok" and outcome.tokens is not None:
            self.settle(ticket.tokens, outcome.tokens)

    def adopt(self, rpm: float | None = None, tpm: float | None = None) -> None:
        """Take the server's own limits (from x-ratelimit-* headers) where we had none or a higher one."""
        if rpm is not None and (self.rpm is None or rpm < self.rpm):
            self.rpm = rpm
        if tpm is not None and (self.tpm is None or tpm < self.tpm):
            self.tpm = tpm
