"""Per-request directives such as ``[[sim:503]]`` found in the last user message.

They let a test target one request deterministically, whatever the random
fault knobs say.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Faults that replace the normal reply; see the package docstring for each one.
FAULTS = ("500", "503", "429", "reset", "disconnect", "slow")
_FLAGS = ("malformed", "empty", "nousage", "invalid", "refuse")  # the last two: with response_format only
_PATTERN = re.compile(r"\[\[sim:([a-z0-9]+)(?:=([^\]]*))?\]\]")


@dataclass(frozen=True, slots=True)
class Directives:
    fault: str | None = None  # one of FAULTS
    flaky: int = 0  # fail this many arrivals of the same message with 503
    latency: float | None = None  # seconds, replaces the drawn latency
    malformed: bool = False
    empty: bool = False
    nousage: bool = False
    invalid: bool = False  # a structured reply without its first required field
    refuse: bool = False  # a structured reply refused (message.refusal)


NONE = Directives()


def parse(text: str) -> Directives:
    """Directives in ``text``; ValueError (served as a 400) for unknown or bad ones."""
    if "[[sim:" not in text:  # the common case costs one substring search
        return NONE
    found: dict[str, object] = {}
    for name, value in _PATTERN.findall(text):
        if name in FAULTS:
            found.setdefault("fault", name)  # the first fault directive wins
        elif name in _FLAGS:
            found[name] = True
        elif name == "flaky":
            found["flaky"] = _parse_value(name, value, int)
        elif name == "latency":
            found["latency"] = _parse_value(name, value, float)
        else:
            raise ValueError(
                f"unknown directive [[sim:{name}]]; known: {', '.join(FAULTS + _FLAGS)}, flaky=K, latency=SECONDS"
            )
    return Directives(**found)  # type: ignore[arg-type]


def _parse_value(name: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(value)
    except ValueError:
        number = -1
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"[[sim:{name}={value}]] needs a non-negative {kind.__name__}, e.g. [[sim:{name}=2]]")
    return number
