"""Batch options: one definition, validated up front, shared by the API, the magic and the widgets."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import ConfigError

__all__ = ["BatchOptions", "Message", "Prompt", "normalize_prompts"]

Message = Mapping[str, Any]
Prompt = Union[str, Sequence[Message]]

# Request fields that nbtools sets itself; passing them in ``params`` would fight the options.
_RESERVED_PARAMS = {"model", "messages", "stream", "stream_options", "n"}
VIA = ("online", "batch")  # issue 15


@dataclass
class BatchOptions:
    """Every option of a batch, with the names used by ``batch()``, ``%%llm_batch`` and the panel."""

    model: str | None = None
    concurrency: int | str = 16  # or "auto": adapt to what the endpoint sustains
    repeat: int = 1
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    timeout: float = 60.0  # seconds per attempt; when streaming, the longest silence allowed
    retries: int = 2
    params: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    rpm: float | None = None  # client-side budgets, spread evenly (no initial burst)
    tpm: float | None = None
    cache: bool | None = None  # None: on, except on the built-in simulator (where timing is the point)
    # -- issue 15 (Batch API): how the prompts travel; "batch" = the provider's Batch API (nbtools/batchapi)
    via: str = "online"
    poll_interval: float | None = None  # first seconds between job polls (grows); None: by endpoint
    job_size: int | None = None  # most requests per job (None: the provider's limit); more are split

    def __post_init__(self) -> None:
        self._check_via()
        if self.concurrency != "auto":
            self.concurrency = _positive_int("concurrency", self.concurrency, "e.g. concurrency=16, or 'auto'")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None:
                number = _number(name, value, f"e.g. {name}=600 (per minute)")
                if number <= 0:
                    raise ConfigError(f"{name}={value!r} must be above 0: e.g. {name}=600 (per minute), or leave it unset")
                setattr(self, name, number)
        if not isinstance(self.stream, bool):
            raise ConfigError(f"stream={self.stream!r} must be True or False: e.g. stream=True")
        if self.cache is not None and not isinstance(self.cache, bool):
            raise ConfigError(f"cache={self.cache!r} must be True or False: e.g. cache=False to always send")
        self.repeat = _positive_int("repeat", self.repeat, "e.g. repeat=10 to send each prompt 10 times")
        if self.retries is None or isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries={self.retries!r} must be a whole number >= 0: e.g. retries=2 (0 turns retries off)")
        if self.max_tokens is not None:
            self.max_tokens = _positive_int("max_tokens", self.max_tokens, "e.g. max_tokens=256, or leave it unset")
        if self.temperature is not None:
            t = _number("temperature", self.temperature, "e.g. temperature=0.7")
            if not 0 <= t <= 2:
                raise ConfigError(f"temperature={t!r} is out of range: use a value from 0 to 2")
            self.temperature = t
        timeout = _number("timeout", self.timeout, "e.g. timeout=60 (seconds per request)")
        if timeout <= 0:
            raise ConfigError(f"timeout={timeout!r} must be above 0 seconds: e.g. timeout=60")
        self.timeout = timeout
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise ConfigError(f"model={self.model!r} must be a non-empty model name: e.g. model='gpt-4o-mini'")
        if self.system is not None and not isinstance(self.system, str):
            raise ConfigError(f"system={self.system!r} must be a string: the system message sent before each prompt")
        if self.params is None:
            self.params = {}
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"params={self.params!r} must be a dict of extra request fields: e.g. params={{'seed': 1}}")
        clash = sorted(_RESERVED_PARAMS & set(self.params))
        if clash:
            raise ConfigError(f"params sets {', '.join(clash)}, which nbtools sets itself: use the options model=, stream=, repeat= instead")
        self.params = dict(self.params)
        try:
            json.dumps(self.params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"params cannot be sent as JSON ({exc}): use plain numbers, strings, lists and dicts") from None

    def _check_via(self) -> None:
        """Issue 15: ``via`` is online or batch; batch refuses what only an online run can do."""
        if self.via not in VIA:
            raise ConfigError(f"via={self.via!r} is not a way to send: use via='online' (default) or via='batch' (the provider's Batch API)")
        if self.poll_interval is not None:
            if _number("poll_interval", self.poll_interval, "e.g. poll_interval=5 (seconds)") <= 0:
                raise ConfigError(f"poll_interval={self.poll_interval!r} must be above 0 seconds: e.g. poll_interval=5")
            self.poll_interval = float(self.poll_interval)
        if self.job_size is not None:
            self.job_size = _positive_int("job_size", self.job_size, "e.g. job_size=10000 requests per job")
        if self.via == "batch":
            refused = [name for name, bad in (("stream", self.stream is True), ("rpm", self.rpm is not None),
                                              ("tpm", self.tpm is not None),
                                              ("concurrency", self.concurrency not in (16, "auto"))) if bad]
            if refused:
                raise ConfigError(f"{', '.join(refused)} cannot be used with via='batch' (the provider runs the "
                                  "batch at its own pace): drop them, or use via='online'")

    def request_body(self, messages: list[Message], model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.params)
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def messages(self, prompt: Prompt) -> list[Message]:
        if isinstance(prompt, str):
            messages: list[Message] = [{"role": "user", "content": prompt}]
        else:
            messages = list(prompt)
        if self.system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.system})
        return messages


def normalize_prompts(prompts: Prompt | Iterable[Prompt]) -> list[Prompt]:
    """A list of prompts (strings or message lists), checked one by one; a lone string is one prompt."""
    if isinstance(prompts, str) or _is_message_list(prompts):
        prompts = [prompts]  # type: ignore[list-item,assignment]  # one prompt
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


def _positive_int(name: str, value: object, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name}={value!r} must be a whole number >= 1: {example}")
    if value < 1:
        raise ConfigError(f"{name}={value!r} must be at least 1: {example}")
    return value


def _number(name: str, value: object, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a number: {example}")
    return float(value)
