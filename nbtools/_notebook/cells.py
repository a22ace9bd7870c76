"""Turning a ``%%llm_batch`` cell body into prompts: lines or ``---`` blocks, and ``{name}`` templates.

Pure functions with no IPython in them; the magic turns their ConfigError into a UsageError.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from nbtools._base.errors import ConfigError

_SEPARATOR = re.compile(r"^\s*---\s*$", re.MULTILINE)


def split_prompts(body: str) -> list[str]:
    """Blocks between lines of just ``---`` if there are any, else one prompt per non-empty line."""
    if _SEPARATOR.search(body):
        blocks = [b.strip() for b in _SEPARATOR.split(body)]
    else:
        blocks = [line.strip() for line in body.splitlines()]
    return [b for b in blocks if b]


class _Formatter(string.Formatter):
    """str.format with errors that teach: which name is missing, and the ``{{`` escape."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int) or key == "":
            raise ConfigError(
                "a prompt has braces with no variable name in them ({} or {0}): write {{ and }} for literal "
                "braces, or {name} to fill in a variable"
            )
        try:
            return kwargs[key]
        except KeyError:
            raise ConfigError(
                f"the prompt uses {{{key}}} but {key!r} is not defined: define it in a cell above, "
                f"or write {{{{{key}}}}} for literal braces"
            ) from None


_formatter = _Formatter()


def fill(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}``, ``{name.attr}``, ``{name[key]}`` from ``namespace``; ``{{``/``}}`` stay literal."""
    try:
        return _formatter.vformat(template, (), namespace)
    except ConfigError:
        raise
    except (ValueError, IndexError) as exc:
        raise ConfigError(
            f"cannot fill the prompt template ({exc}): write {{{{ and }}}} for literal braces"
        ) from None
    except (AttributeError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot fill the prompt template: {type(exc).__name__}: {exc}") from None


class Record(dict):  # type: ignore[type-arg]
    """A DataFrame row whose fields read as ``{item.name}`` or ``{item[name]}``.

    (A pandas row Series would answer ``{item.name}`` with its index label instead.)
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the row has no column {name!r}; its columns: {', '.join(map(str, self))}") from None


_COLUMN = re.compile(r"""^([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*)|\[\s*(['"])(.+?)\3\s*\])$""")


def over_value(expr: str, namespace: Mapping[str, Any], flag: str = "--over") -> Any:
    """What ``--over`` (or ``flag``) names: a variable, or a column of one (``df.review`` or ``df["review"]``)."""
    match = _COLUMN.match(expr.strip())
    name = match.group(1) if match else expr
    if name not in namespace:
        raise ConfigError(f"{flag} {expr}: {name!r} is not defined; define it in a cell above")
    value = namespace[name]
    if match is None or not (match.group(2) or match.group(4)):
        return value
    column = match.group(2) or match.group(4)
    if hasattr(value, "columns"):
        if column not in value.columns:
            raise ConfigError(f"{flag} {expr}: {name} has no column {column!r}; its columns: "
                              f"{', '.join(map(str, value.columns))}")
        return value[column]
    if match.group(2) and hasattr(value, column):
        return getattr(value, column)
    raise ConfigError(f"{flag} {expr}: {name} is a {type(value).__name__}, not a DataFrame with a column {column!r}")


def items_of(value: Any, name: str) -> list[Any]:
    """The items ``--over`` iterates: a list, tuple, range, pandas Series, or a DataFrame's rows."""
    if isinstance(value, (str, bytes)) or isinstance(value, Mapping):
        raise ConfigError(
            f"--over {name}: {name} is of type {type(value).__name__}, not a list of items: "
            f"pass a list, a tuple or a pandas Series"
        )
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame: one item per row
        return [Record(row) for row in value.to_dict("records")]
    if not isinstance(value, Iterable):
        raise ConfigError(
            f"--over {name}: {name} is of type {type(value).__name__}, which cannot be iterated: "
            "pass a list, a tuple or a pandas Series"
        )
    items = list(value)
    if not items:
        raise ConfigError(f"--over {name}: {name} is empty, so there is nothing to run")
    return items


def fill_over(template: str, items: Iterable[Any], namespace: Mapping[str, Any]) -> list[str]:
    """One prompt per item: ``{item}`` is the item, other names come from ``namespace``."""
    scope = dict(namespace)
    prompts = []
    for item in items:
        scope["item"] = item
        prompts.append(fill(template, scope))
    return prompts


def changed_options(before: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """The options that differ, as ``temperature 0.2 -> 0.7, max_tokens None -> 64`` ('' if none)."""
    changed = [f"{name} {_short(before.get(name))} -> {_short(now.get(name))}"
               for name in dict.fromkeys([*before, *now]) if not _same(before.get(name), now.get(name))]
    return ", ".join(changed)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. a dict holding a pandas Series, which compares element by element
        return a is b


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
