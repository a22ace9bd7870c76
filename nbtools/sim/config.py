"""The simulator's knobs: one frozen, validated dataclass.

Frozen so a live change (``POST /sim/config``) builds and validates a whole new
config before swapping it in: a bad knob never leaves the server half-changed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from nbtools._base.checks import whole_number

REPLY_MODES = ("varied", "echo")  # any other string is served verbatim
OVER_CAPACITY_MODES = ("queue", "503")
FAULT_KNOBS = ("fail_500", "fail_503", "fail_429", "fail_reset", "fail_disconnect", "fail_slow")


def _knob(default: Any, help: str) -> Any:
    # The help text lives next to the knob so the CLI's --help cannot drift from it.
    return field(default=default, metadata={"help": help})


def _fault(what: str) -> Any:
    # One of FAULT_KNOBS: off by default, a probability per request.
    return _knob(0.0, f"probability of {what}")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Behaviour of the simulated OpenAI-compatible server."""

    seed: int = _knob(0, "seed for reply text and for the latency/fault draws")
    latency: float = _knob(0.55, "mean seconds for a whole non-streamed reply")
    latency_spread: float = _knob(0.35, "lognormal sigma of the latency; 0 = always exactly --latency")
    ttft: float | None = _knob(None, "seconds to the first streamed token (unset: 0.3 x the drawn latency)")
    tokens_per_second: float | None = _knob(
        None, "if set, a reply takes ttft + tokens / tokens_per_second instead of the drawn latency"
    )
    reply: str = _knob("varied", "'varied' (deterministic sentences), 'echo' (last user message) or a fixed text")
    capacity: int | None = _knob(None, "max requests processed at once (unset: unlimited)")
    over_capacity: str = _knob(
        "queue", "past capacity: 'queue' (wait for a slot, like llama.cpp) or '503' (like Ollama)"
    )
    rpm: float | None = _knob(None, "requests per minute before 429s, enforced per --rate-burst seconds (unset: unlimited)")
    tpm: float | None = _knob(
        None, "tokens (prompt + completion) per minute before 429s, enforced like rpm (unset: unlimited)"
    )
    rate_burst: float = _knob(1.0, "seconds of rpm/tpm budget the server lets a client spend at once")
    fail_500: float = _fault("a 500 per request")
    fail_503: float = _fault("a 503 per request")
    fail_429: float = _fault("a 429 (with retry-after) per request")
    fail_reset: float = _fault("closing the connection before any response byte")
    fail_disconnect: float = _fault("dropping the connection part-way through the reply")
    fail_slow: float = _fault("delaying the first byte by --slow-delay seconds")
    slow_delay: float = _knob(30.0, "seconds added before the first byte of a 'slow' request")
    retry_after: float = _knob(1.0, "retry-after seconds sent with injected 429s")
    invalid_output: float = _knob(0.0, "with response_format json_schema: share of replies missing a required field")
    judge_bias: float = _knob(0.0, "sim-judge: share of pairwise verdicts that pick the first reply whatever it says")
    refusal: float = _knob(0.0, "with response_format json_schema: share of requests refused (message.refusal)")
    # Batch APIs (sim/batches.py): compressed time, and the providers' limits unless set lower.
    batch_delay: float = _knob(1.0, "seconds from creating a batch job to its completion (validating, in progress, finalizing)")
    batch_expire: float | None = _knob(None, "seconds after creation when an unfinished batch job expires (unset: never)")
    batch_max_requests: int | None = _knob(None, "most requests per batch job (unset: the providers' 50,000 / 100,000)")
    prompt_cache_min: int = _knob(
        1024, "fewest prompt tokens whose prefix the prompt cache keeps (as OpenAI's 1,024); 0 turns it off")
    prompt_cache_ttl: float = _knob(300.0, "seconds a cached prompt prefix lasts after its last use")
    models: tuple[str, ...] = _knob(
        ("sim-small", "sim-large", "sim-mini", "sim-standard", "sim-pro", "sim-judge"),
        "model names listed by GET /v1/models (sim-mini, sim-standard and sim-pro: the lineup, see nbtools/sim/lineup.py; "
        "sim-judge: a judge, nbtools/sim/judge.py)")
    refuse: tuple[str, ...] = _knob(
        (), "request fields refused with OpenAI's 400, as reasoning models refuse them: 'temperature' (every "
        "model) or 'sim-large:temperature' (one model); 'max_tokens' asks for max_completion_tokens")

    def __post_init__(self) -> None:
        self._check_numbers()
        self._check_modes()
        self._check_shares()
        self._normalise_lists()
        self._check_lists()

    def _check_numbers(self) -> None:
        """The seed, the times, and the limits that are a number or None."""
        _check_int("seed", self.seed)
        for name in ("latency", "latency_spread", "slow_delay", "retry_after"):
            _check_number(name, getattr(self, name), minimum=0.0)
        _check_number("ttft", self.ttft, minimum=0.0, optional=True)
        _check_number("batch_delay", self.batch_delay, minimum=0.0)
        _check_int("prompt_cache_min", self.prompt_cache_min, minimum=0, hint="or 0 to turn the prompt cache off")
        _check_number("prompt_cache_ttl", self.prompt_cache_ttl, minimum=0.0)
        _check_number("batch_expire", self.batch_expire, minimum=0.0, optional=True)
        if self.batch_max_requests is not None:
            _check_int("batch_max_requests", self.batch_max_requests, minimum=1, hint="or None for the providers' limits")
        for name in ("tokens_per_second", "rpm", "tpm", "rate_burst"):
            _check_number(name, getattr(self, name), minimum=0.0, optional=True, exclusive=True)

    def _check_modes(self) -> None:
        """The kind of reply, and what happens past capacity."""
        if not isinstance(self.reply, str):
            raise ValueError(f"reply={self.reply!r} is not a string; use 'varied', 'echo' or a fixed text")
        if self.capacity is not None:
            _check_int("capacity", self.capacity, minimum=1, hint="or None for unlimited")
        if self.over_capacity not in OVER_CAPACITY_MODES:
            raise ValueError(f"over_capacity={self.over_capacity!r} is not a mode; use 'queue' or '503'")

    def _check_shares(self) -> None:
        """The fault probabilities (at most 1 in all) and the structured-output shares, each from 0 to 1."""
        for name in FAULT_KNOBS:
            _check_fraction(name, getattr(self, name), "a probability")
        for name in ("invalid_output", "refusal", "judge_bias"):
            _check_fraction(name, getattr(self, name), "a share")
        total = sum(getattr(self, name) for name in FAULT_KNOBS)
        if total > 1 + 1e-9:
            raise ValueError(f"fault probabilities sum to {total:g}; lower fail_* so they add up to at most 1")

    def _normalise_lists(self) -> None:
        # JSON bodies and argparse hand over lists; normalise so configs compare and hash.
        if isinstance(self.models, list):
            object.__setattr__(self, "models", tuple(self.models))
        if isinstance(self.refuse, (list, str)):
            object.__setattr__(self, "refuse", (self.refuse,) if isinstance(self.refuse, str) else tuple(self.refuse))

    def _check_lists(self) -> None:
        """The refused fields and the model names."""
        if not all(isinstance(r, str) and r.rpartition(":")[2] for r in self.refuse):
            raise ValueError(f"refuse={self.refuse!r} must name request fields, e.g. ('temperature',) or "
                             "('sim-large:temperature',)")
        if (
            not isinstance(self.models, tuple)
            or not self.models
            or not all(isinstance(m, str) and m for m in self.models)
        ):
            raise ValueError(f"models={self.models!r} must be a non-empty tuple of non-empty model names")

    def replace(self, /, **knobs: Any) -> SimConfig:
        """A validated copy with ``knobs`` changed; unknown knob names raise ValueError."""
        unknown = sorted(set(knobs) - set(knob_names()))
        if unknown:
            raise ValueError(f"unknown simulator knob(s) {unknown}; known knobs: {', '.join(knob_names())}")
        return dataclasses.replace(self, **knobs)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in knob_names()}


def knob_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(SimConfig))


def _check_int(name: str, value: Any, minimum: int | None = None, hint: str = "") -> None:
    whole_number(name, value, minimum, hint)


def _check_number(
    name: str, value: Any, *, minimum: float, optional: bool = False, exclusive: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fix = "a finite number" + (" or None" if optional else "")
        raise ValueError(f"{name}={value!r} is not a number; use {fix}")
    if value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        fix = " (or None to disable)" if optional else ""
        raise ValueError(f"{name}={value!r} is out of range; use a value {bound}{fix}")


def _check_fraction(name: str, value: Any, what: str) -> None:
    """``value``: a number from 0 to 1 (``what``: "a probability", "a share")."""
    _check_number(name, value, minimum=0.0)
    if value > 1:
        raise ValueError(f"{name}={value!r} is {what}; use a value between 0 and 1")
