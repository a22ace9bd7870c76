"""Value checks shared by every option in nbtools: one place for each rule and its teaching message."""

from __future__ import annotations

import math

from .errors import ConfigError

__all__ = ["whole_number", "number"]


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
