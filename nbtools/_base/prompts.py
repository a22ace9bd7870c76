"""Prompts as users give them: strings or chat message lists, checked one by one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

from nbtools._base.errors import ConfigError

Message = Mapping[str, Any]
Prompt = Union[str, Sequence[Message]]


def normalize_prompts(prompts: Prompt | Iterable[Prompt]) -> list[Prompt]:
    """A list of prompts (strings or message lists), checked one by one; a lone string is one prompt."""
    if isinstance(prompts, str) or _is_message_list(prompts):
        prompts = [prompts]  # type: ignore[assignment]  # one prompt
    elif isinstance(prompts, Mapping):
        raise ConfigError(
            f"prompts={_short(prompts)} is a dict: pass a list of strings, e.g. list(d.values()), "
            "or a list of chat message lists"
        )
    try:
        items: list[Prompt] = list(prompts)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(
            f"prompts={_short(prompts)} is not a list: pass a list of strings or of chat message lists"
        ) from None
    if not items:
        raise ConfigError("prompts is empty: pass at least one prompt, e.g. batch(['Hello!'])")
    for i, item in enumerate(items):
        if isinstance(item, str):
            if not item.strip():
                raise ConfigError(f"prompt {i} is empty: remove it or give it some text")
        elif not _is_message_list(item):
            raise ConfigError(
                f"prompt {i} is {type(item).__name__} ({_short(item)}): each prompt must be a string or a list "
                "of messages like [{'role': 'user', 'content': '...'}]; convert it with str() if it is data"
            )
    return items


def _is_message_list(value: object) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(m, Mapping) and isinstance(m.get("role"), str) and "content" in m for m in value)
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

