"""Row checks (``checks=``): built-ins by name and the user's callables, each giving a row a value.

A check reads a finished row (``row.text``, ``row.data``, ``row.expected``) and says True/False, a number, or
None (it does not apply). The built-ins: ``exact``, ``contains``, ``number`` (the reply's first number equals
the expected one), ``json`` (the reply is JSON; with ``schema=`` it validated) and ``regex:PATTERN``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from nbtools._base.errors import ConfigError

Verdict = bool | float | None
EXAMPLE = "e.g. checks={'right': 'number', 'short': lambda row: len(row.text) < 200} (magic: --check right=number)"
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


class Graded(Protocol):
    """What a check may read of a row (nbtools._engine.rows.RequestResult is one)."""

    text: str | None
    data: dict[str, Any] | None
    expected: Any
    checks: dict[str, Verdict] | None
    check_error: str | None


Check = Callable[[Any], Any]


def _first_number(text: str | None) -> float | None:
    found = _NUMBER.search(text or "")
    return None if found is None else float(found.group().replace(",", "."))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return _first_number(str(value))


def exact(row: Graded) -> bool | None:
    if row.expected is None:
        return None
    return (row.text or "").strip() == str(row.expected).strip()


def contains(row: Graded) -> bool | None:
    if row.expected is None:
        return None
    return str(row.expected).strip().lower() in (row.text or "").lower()


def number(row: Graded) -> bool | None:
    want = _as_number(row.expected)
    if want is None:
        return None
    got = _first_number(row.text)
    return got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def is_json(row: Graded) -> bool:
    if row.data is not None:
        return True
    try:
        json.loads(row.text or "")
    except ValueError:
        return False
    return True


def _regex(pattern: re.Pattern[str]) -> Check:
    def matches(row: Graded) -> bool:
        return pattern.search(row.text or "") is not None

    return matches


BUILTINS: dict[str, Check] = {"exact": exact, "contains": contains, "number": number, "json": is_json}


def to_check(where: str, value: Any) -> Check:
    """A built-in's name (or ``regex:PATTERN``), or a callable taking the row; else a one-line ConfigError."""
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        raise ConfigError(f"{where}={value!r} is not a check: give a built-in's name ({', '.join(BUILTINS)}, "
                          "regex:PATTERN) or a function taking the row, e.g. lambda row: 'yes' in row.text")
    name = value.strip()
    if name.startswith("regex:"):
        try:
            return _regex(re.compile(name[len("regex:"):]))
        except re.error as exc:
            raise ConfigError(f"{where}={value!r}: the pattern does not compile ({exc}): e.g. 'regex:^\\d+$'") from None
    if name not in BUILTINS:
        raise ConfigError(f"{where}={value!r} is not a built-in check: choose one of {', '.join(BUILTINS)} or "
                          "regex:PATTERN, or give a function taking the row")
    return BUILTINS[name]


def to_checks(where: str, value: Any) -> dict[str, Check]:
    """``{name: check}`` checked: each name a non-empty string, each check a built-in or a callable."""
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{where}={value!r} must be a non-empty dict of name -> check: {EXAMPLE}")
    checks: dict[str, Check] = {}
    for name, check in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: the check name {name!r} must be a non-empty string: {EXAMPLE}")
        checks[name.strip()] = to_check(f"{where}[{name!r}]", check)
    return checks


def _verdict(value: Any) -> Verdict:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item"):  # a numpy scalar (a pandas expression in a lambda)
        return _verdict(value.item())
    raise TypeError(f"returned {type(value).__name__}, not True/False, a number or None")


def grade(row: Graded, checks: Mapping[str, Check]) -> None:
    """Fill ``row.checks``; a check that raises leaves its value None and says why in ``row.check_error``."""
    values: dict[str, Verdict] = {}
    problems: list[str] = []
    for name, check in checks.items():
        try:
            values[name] = _verdict(check(row))
        except Exception as exc:  # a user's check: its failure is that row's, not the batch's
            values[name] = None
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    row.checks = values
    row.check_error = "; ".join(problems) or None
