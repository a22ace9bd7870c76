"""Value checks shared by every option in nbtools: one place for each rule and its teaching message."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from nbtools._base.errors import ConfigError


def whole_number(name: str, value: object, minimum: int | None = 1, example: str = "") -> int:
    """``value`` as an int >= ``minimum`` (a float like 4.0 is accepted), else ConfigError."""
    fix = f": {example}" if example else ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        at_least = "" if minimum is None else f" >= {minimum}"
        raise ConfigError(f"{name}={value!r} must be a whole number{at_least}{fix}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value!r} must be at least {minimum}{fix}")
    return value


def number(name: str, value: object, example: str = "", *, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None) -> float:
    """``value`` as a finite float within the bounds given, else ConfigError."""
    fix = f": {example}" if example else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a number{fix}")
    result = float(value)
    if above is not None and result <= above:
        raise ConfigError(f"{name}={value!r} must be above {above:g}{fix}")
    if (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        low = "" if minimum is None else f"from {minimum:g} "
        raise ConfigError(f"{name}={value!r} is out of range: use a value {low}to {maximum:g}{fix}" if maximum is not None
                          else f"{name}={value!r} must be at least {minimum:g}{fix}")
    return result


def sendable(label: str, value: object, fix: str) -> None:
    """``value`` can go in a request body as JSON, else a ConfigError: ``{label} cannot be sent as JSON (why): {fix}``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label} cannot be sent as JSON ({exc}): {fix}") from None


PRICE_EXAMPLE = "e.g. price=(0.15, 0.60): USD per million input and output tokens (magic: --price 0.15,0.60)"


def parse_price(value: object) -> tuple[float, float] | None:
    """``price=`` as given: (input, output) USD per million tokens, or the text "0.15,0.60"."""
    if value is None:
        return None
    if isinstance(value, str):
        parts: Sequence[object] = [p for p in value.replace(" ", "").split(",") if p]
        try:
            parts = [float(p) for p in parts]  # type: ignore[arg-type]
        except ValueError:
            raise ConfigError(f"price={value!r} is not two numbers: {PRICE_EXAMPLE}") from None
    elif isinstance(value, (tuple, list)):
        parts = value
    else:
        raise ConfigError(f"price={value!r} must be two numbers (input, output): {PRICE_EXAMPLE}")
    if len(parts) != 2 or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= 0 for p in parts
    ):
        raise ConfigError(f"price={value!r} must be two numbers >= 0 (input, output): {PRICE_EXAMPLE}")
    return float(parts[0]), float(parts[1])  # type: ignore[arg-type]
