"""Batch options, each declared once: type, default, check, help, magic flags and panel control.

``batch()``'s keywords, the ``%%llm_batch`` flags, ``%config LLMBatch`` traits, the panel's controls,
the API docstrings and the README's option table all come from (or are tested against) OPTIONS.
Adding an option means one ``option(...)`` line below plus the behaviour it controls.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any

from nbtools._base.checks import number, parse_price, sendable, whole_number
from nbtools._base.errors import ConfigError
from nbtools._base.grading import EXAMPLE as CHECKS_EXAMPLE
from nbtools._base.grading import Check, to_checks
from nbtools._base.judging import RUBRIC_EXAMPLE, Scale, check_rubric, to_scale
from nbtools._base.schemas import EXAMPLE as SCHEMA_EXAMPLE
from nbtools._base.schemas import Schema, to_schema

# Request fields that nbtools sets itself; passing them in ``params`` would fight the options.
_RESERVED_PARAMS = {"model", "messages", "stream", "stream_options", "n"}
DEFAULT_TIMEOUT = 60.0
# OpenAI's flex guide (platform.openai.com/docs/guides/flex-processing) raises the client's timeout to 15 minutes.
FLEX_TIMEOUT = 900.0


# -- kinds: how a value is checked, and read from the text of a magic line ----------------------------
class Kind:
    """Checks a Python value (``check``) and turns magic-line text into one (``parse``)."""

    expects = "a value"  # what the text must be, for the error when it cannot be read
    named = False  # on the magic line the value is a variable's name, which the magic looks up
    per_prompt = False  # data with one entry per prompt (images, reference answers), not a setting

    def check(self, name: str, value: Any, example: str) -> Any:
        return value

    def convert(self, text: str) -> Any:
        return text

    def parse(self, name: str, text: str, example: str) -> Any:
        try:
            value = self.convert(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} must be {self.expects}: {example}") from None
        return self.check(name, value, example)


def _whole(text: str) -> int:
    """``"4"`` or ``"4.0"`` as 4, as the API takes 4.0; anything else is a ValueError."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


class Text(Kind):
    """A string; ``checked=False`` leaves it to its user (endpoint options check themselves, unechoed)."""

    def __init__(self, *, nonempty: bool = False, checked: bool = True) -> None:
        self.nonempty, self.checked = nonempty, checked

    def check(self, name: str, value: Any, example: str) -> Any:
        if self.checked and (not isinstance(value, str) or (self.nonempty and not value.strip())):
            what = "a non-empty string" if self.nonempty else "a string"
            raise ConfigError(f"{name}={value!r} must be {what}: {example}")
        return value


class WholeNumber(Kind):
    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self.expects = f"a whole number >= {minimum}"

    def check(self, name: str, value: Any, example: str) -> int:
        return whole_number(name, value, self.minimum, example)

    def convert(self, text: str) -> int:
        return _whole(text)


class Number(Kind):
    expects = "a number"

    def __init__(self, *, minimum: float | None = None, maximum: float | None = None, above: float | None = None) -> None:
        self.bounds = {"minimum": minimum, "maximum": maximum, "above": above}

    def check(self, name: str, value: Any, example: str) -> float:
        return number(name, value, example, **self.bounds)

    def convert(self, text: str) -> float:
        return float(text)


class Flag(Kind):
    """True or False; on the magic line a bare flag (``--stream``), with an optional ``--no-`` form."""

    def __init__(self, negative: str | None = None) -> None:
        self.negative = negative

    def check(self, name: str, value: Any, example: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be True or False: {example}")
        return value


class Concurrency(Kind):
    """A whole number >= 1, or "auto"."""

    expects = "a whole number >= 1 or 'auto'"

    def check(self, name: str, value: Any, example: str) -> int | str:
        return "auto" if value == "auto" else whole_number(name, value, 1, example)

    def convert(self, text: str) -> int | str:
        return text if text == "auto" else _whole(text)


class RequestFields(Kind):
    """A dict of extra request fields, sent as JSON; on the magic line, a JSON object."""

    def check(self, name: str, value: Any, example: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}={value!r} must be a dict of extra request fields: {example}")
        clash = sorted(_RESERVED_PARAMS & set(value))
        if clash:
            raise ConfigError(f"{name} sets {', '.join(clash)}, which nbtools sets itself: "
                              "use the options model=, stream=, repeat= instead")
        sendable(name, value, "use plain numbers, strings, lists and dicts")
        return dict(value)

    def parse(self, name: str, text: str, example: str) -> dict[str, Any]:
        flag = "--" + name.replace("_", "-")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{flag} is not valid JSON ({exc.args[0]}): e.g. {flag} '{{\"seed\": 1}}'") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{flag} must be a JSON object: e.g. {flag} '{{\"seed\": 1, \"top_p\": 0.9}}'")
        return self.check(name, value, example)


class Choice(Kind):
    """One of a few words."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def check(self, name: str, value: Any, example: str) -> str:
        if value not in self.choices:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(repr, self.choices))}: {example}")
        return value  # type: ignore[no-any-return]


class Rates(Kind):
    """USD per million (input, output) tokens: a pair, or the text "0.15,0.60" (engine.prices.Price is what it becomes)."""

    def check(self, name: str, value: Any, example: str) -> tuple[float, float] | None:
        return parse_price(value)


class Column(Kind):
    """One entry per prompt (``images=``, ``files=``): a list, a tuple or a pandas Series, kept as a list; on the
    magic line, a variable's name or a DataFrame column (``df.photo``), which the magic looks up."""

    named = True
    per_prompt = True

    def check(self, name: str, value: Any, example: str) -> list[Any]:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{name}={_shown(value)} must be a list with one entry per prompt: {example}")
        values = getattr(value, "tolist", None)
        return list(values() if callable(values) else value)


class SchemaKind(Kind):
    """A Pydantic model class, a JSON Schema dict or the short form; on the magic line, a variable's name
    (the magic looks it up) or the short form."""

    def check(self, name: str, value: Any, example: str) -> Schema:
        return to_schema(value, name)


class Expected(Kind):
    """One reference answer per prompt (or ``--over`` item): a list, tuple or pandas Series; on the magic line, a
    variable's name (or a column of the ``--over`` frame)."""

    named = True  # the magic looks the name up
    per_prompt = True

    def check(self, name: str, value: Any, example: str) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{name} must be a list (or pandas Series) with one reference answer per prompt, "
                              f"not {type(value).__name__}: {example}")
        return tuple(None if _missing(item) else item for item in value)


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA: no reference for that row."""
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):  # pandas.NA refuses bool(); arrays compare element-wise
        return value is not None and type(value).__name__ == "NAType"


class CheckMap(Kind):
    """``{name: check}``: a built-in's name (exact, contains, number, json, regex:PATTERN) or a callable taking the
    row; on the magic line ``--checks VAR`` (a dict) and ``--check NAME=CHECK`` (repeatable)."""

    named = True

    def check(self, name: str, value: Any, example: str) -> dict[str, Check]:
        return to_checks(name, value)

    def parse_each(self, name: str, items: list[str]) -> dict[str, str]:
        """``["right=number", "yes=regex:^yes"]`` as a dict, each item NAME=CHECK."""
        found: dict[str, str] = {}
        for item in items:
            key, equals, check = item.partition("=")
            if not equals or not key.strip() or not check.strip():
                raise ConfigError(f"--check {item!r} must be NAME=CHECK: e.g. --check right=number")
            found[key.strip()] = check.strip()
        return found


# What an item of ``models=[...]`` may set: where its requests go, and how many at once. An option that
# belongs to one endpoint rather than to the batch (an API flavour such as api=, a service tier=) joins
# this list; nbtools._several passes every key but label and api_key on as that endpoint's option.
MODEL_KEYS = ("model", "base_url", "provider", "api_key_env", "api_key", "concurrency", "price", "api", "tier", "label")
ENDPOINT_KEYS = ("provider", "base_url", "api_key_env", "api_key")  # an item giving one starts afresh


@dataclass(frozen=True, repr=False)
class ModelItem:
    """One endpoint of a several-model batch: its label and the options it sets (``settings``)."""

    label: str
    settings: dict[str, Any]  # may hold an api_key: never shown (see __repr__)

    @property
    def new_endpoint(self) -> bool:
        """Does it name an endpoint of its own (so the batch's provider, base_url and key do not apply)?"""
        return any(key in self.settings for key in ENDPOINT_KEYS)

    def __repr__(self) -> str:
        return f"ModelItem({self.label!r})"


class ModelList(Kind):
    """Several endpoints in one batch: ``provider:model`` strings, or dicts of that endpoint's options.

    The shape is checked here; whether a provider exists is the endpoint resolver's to say (nbtools._engine.launch).
    """

    expects = "comma-separated provider:model names"

    def check(self, name: str, value: Any, example: str) -> tuple[ModelItem, ...]:
        if isinstance(value, str) and "," in value:  # as on the magic line (or in %config)
            value = self.convert(value)
        if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name}={_shown(value)} must be a non-empty list: {example}")
        items = [_model_item(f"{name}[{i}]", item, example) for i, item in enumerate(value)]
        seen: set[str] = set()
        for item in items:
            if item.label in seen:
                raise ConfigError(f"{name}: two items are labelled {item.label!r}: give one a label of its own, "
                                  f"e.g. {{'model': ..., 'label': '{item.label}-2'}}")
            seen.add(item.label)
        return tuple(items)

    def convert(self, text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]


def _shown(value: Any) -> str:
    """A value for an error message: a dict is named by its keys only (it may hold an api_key)."""
    return f"a dict with keys {sorted(map(str, value))}" if isinstance(value, Mapping) else repr(value)


def _model_item(where: str, item: Any, example: str) -> ModelItem:
    if isinstance(item, ModelItem):  # checked already (options are checked again on their way to the engine)
        return item
    if isinstance(item, str):
        return _named_item(where, item, example)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}={item!r} must be a 'provider:model' string or a dict of options: {example}")
    return _dict_item(where, item)


def _named_item(where: str, item: str, example: str) -> ModelItem:
    """``"provider:model"``, or a bare model name on the batch's own endpoint."""
    provider, colon, model = item.strip().partition(":")
    if not colon:
        provider, model = "", provider
    if not model.strip() or (colon and not provider.strip()):
        raise ConfigError(f"{where}={item!r} must be 'provider:model' or a model name: {example}")
    settings: dict[str, Any] = {"model": model.strip()}
    if colon:
        settings["provider"] = provider.strip()
    return ModelItem(item.strip(), settings)


def _dict_item(where: str, item: Mapping[str, Any]) -> ModelItem:
    """A dict of the options one endpoint sets, each checked as the option itself is, and its label."""
    unknown = sorted(str(key) for key in item if key not in MODEL_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                          f"an item takes {', '.join(MODEL_KEYS)}")
    settings = {key: value for key, value in item.items() if key != "label"}
    for key in [key for key in settings if key in OPTIONS]:  # checked as the option itself is
        spec = OPTIONS[key][1]
        settings[key] = spec.kind.check(f"{where}.{key}", settings[key], spec.example)
    if not any(key in settings for key in ("model", "provider", "base_url")):
        raise ConfigError(f"{where} names no endpoint: give it 'model', 'provider' or 'base_url', "
                          "e.g. {'provider': 'sim', 'model': 'sim-large'}")
    label: Any = item.get("label")
    if label is None:
        given, asked = settings.get("provider"), settings.get("model")
        label = f"{given}:{asked}" if given and asked else asked or given or settings.get("base_url")
    if not isinstance(label, str) or not label.strip():
        raise ConfigError(f"{where}.label={label!r} must be a non-empty string: e.g. 'label': 'small'")
    return ModelItem(label.strip(), settings)


class JudgeModel(Kind):
    """The judge's model, named as an item of ``models=[...]`` is: ``provider:model``, a model name on the batch's
    own endpoint, or a dict of that endpoint's options."""

    def check(self, name: str, value: Any, example: str) -> ModelItem:
        return _model_item(name, value, example)


class Rubric(Kind):
    def check(self, name: str, value: Any, example: str) -> str:
        return check_rubric(name, value)


class ScaleKind(Kind):
    def check(self, name: str, value: Any, example: str) -> Scale:
        return to_scale(name, value)


@dataclass(frozen=True)
class OptionSpec:
    """Everything about one option except its name and default (those are the dataclass field's)."""

    help: str
    kind: Kind
    flags: tuple[str, ...] = ()  # on the magic line; () = Python API only
    example: str = ""  # the fix shown in error messages
    panel: bool = False  # the panel has a control of its own for it
    panel_takes: bool = True  # False: the panel has no use for it, and %llm_panel refuses its flag
    online_only: bool = False  # a Batch API job cannot do it (the provider runs the job whole, at its own pace)
    resent: bool = True  # resend() takes it from the batch it completes (False: how that batch ran, not what it asked)
    several: str | None = None  # on the magic line, a comma-separated value goes to this option instead
    each: str | None = None  # a repeatable magic flag that adds one NAME=VALUE item to this (dict) option
    judged: bool = False  # a judge's batch (nbtools._judge) takes it from the batch it judges


def option(default: Any, help: str, kind: Kind, *, flags: tuple[str, ...] = (), example: str = "",
           panel: bool = False, panel_takes: bool = True, online_only: bool = False, resent: bool = True,
           several: str | None = None, each: str | None = None, judged: bool = False) -> Any:
    spec = OptionSpec(help, kind, flags, example, panel, panel_takes, online_only, resent and not online_only, several,
                      each, judged)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"spec": spec})
    # A column (images=, files=) is data, not a setting: a repr of the options does not print a thousand images.
    return field(default=default, metadata={"spec": spec}, repr=not isinstance(kind, Column))


@dataclass
class BatchOptions:
    """Every option of a batch, with the names used by ``batch()``, ``%%llm_batch`` and the panel."""

    model: str | None = option(
        None, "model name (default: the provider's default, or the server's first model)", Text(nonempty=True),
        flags=("-m", "--model"), example="e.g. model='gpt-4o-mini'", panel=True, several="models")
    models: tuple[ModelItem, ...] | None = option(
        None, "several models side by side, each on its own endpoint: `provider:model` names (magic: `-m a,b,c`), "
        "or dicts of model, base_url, provider, api_key_env, api_key (Python only), concurrency, price, api, tier, label",
        ModelList(), flags=("--models",), panel=True,
        example="e.g. models=['sim:sim-small', 'sim:sim-large'] (magic: -m sim:sim-small,sim:sim-large)")
    concurrency: int | str = option(
        16, "most requests in flight (default 16), or `auto` to adapt to the endpoint", Concurrency(),
        flags=("-c", "--concurrency"), example="e.g. concurrency=16, or 'auto'", panel=True, online_only=True)
    repeat: int = option(
        1, "send each prompt n times (separate samples)", WholeNumber(1),
        flags=("-n", "--repeat"), example="e.g. repeat=10 to send each prompt 10 times", panel=True,
        resent=False)  # the rows to send again are already one per sample
    system: str | None = option(
        None, "system message", Text(),
        flags=("-s", "--system"), example="the system message sent before each prompt, e.g. system='Be brief.'")
    temperature: float | None = option(
        None, "sampling temperature, 0 to 2", Number(minimum=0, maximum=2),
        flags=("-t", "--temperature"), example="e.g. temperature=0.7", panel=True)
    max_tokens: int | None = option(
        None, "most tokens per reply", WholeNumber(1),
        flags=("--max-tokens",), example="e.g. max_tokens=256, or leave it unset", panel=True)
    params: dict[str, Any] = option(
        {}, "extra request fields as a JSON object: `seed`, `top_p`, `response_format`, ...", RequestFields(),
        flags=("--params",), example="e.g. params={'seed': 1}")
    stream: bool = option(
        False, "stream tokens; time to first token is recorded", Flag(),
        flags=("--stream",), example="e.g. stream=True", panel=True, online_only=True)
    timeout: float = option(
        DEFAULT_TIMEOUT, "seconds per attempt (streaming: the longest silence, so long replies are not cut); "
        f"with tier='flex' {FLEX_TIMEOUT:g} unless set", Number(above=0),
        flags=("--timeout",), example="e.g. timeout=60 (seconds per request)", judged=True)
    retries: int = option(
        2, "retries for server errors (5xx), timeouts, dropped connections and cut-off streams", WholeNumber(0),
        flags=("--retries",), example="e.g. retries=2 (0 turns retries off)", judged=True)
    max_wait: float = option(
        300.0, "seconds a batch keeps waiting out rate limits (429) and overload (503/529) with no reply at all "
        "before those rows fail; such waits never use up `retries`", Number(above=0),
        flags=("--max-wait",), example="e.g. max_wait=600 (seconds)", judged=True)
    rpm: float | None = option(
        None, "client-side budget in requests per minute, spread evenly (no initial burst)", Number(above=0),
        flags=("--rpm",), example="e.g. rpm=600 (per minute), or leave it unset", online_only=True)
    tpm: float | None = option(
        None, "client-side budget in tokens per minute (estimated, then corrected)", Number(above=0),
        flags=("--tpm",), example="e.g. tpm=100000 (per minute), or leave it unset", online_only=True)
    cache: bool | None = option(
        None, "answer identical requests from the on-disk cache (default: on, except on the simulator)",
        Flag(negative="--no-cache"), flags=("--cache",), example="e.g. cache=False to always send", judged=True)
    prompt_cache_warmup: bool | None = option(
        None, "send one row first and the rest once its reply has begun, so they read the prefix it left in the "
        "provider's prompt cache instead of all missing at once (default: on where the provider caches a prefix "
        "the rows share, off on the simulator)", Flag(negative="--no-prompt-cache-warmup"),
        flags=("--prompt-cache-warmup",), example="e.g. prompt_cache_warmup=False to send every row at once",
        online_only=True)
    prompt_cache_retention: str | None = option(
        None, "OpenAI: how long a cached prompt prefix is kept, `in_memory` or `24h` (sent as "
        "`prompt_cache_retention`)", Choice("in_memory", "24h"), flags=("--prompt-cache-retention",),
        example="prompt_cache_retention='24h' (or 'in_memory')")
    dedupe: bool = option(
        False, "send identical requests once and share the reply (e.g. labelling many duplicate rows at "
        "temperature 0); by default each one is a sample of its own", Flag(),
        flags=("--dedupe",), example="e.g. dedupe=True")
    price: tuple[float, float] | None = option(
        None, "USD per million input and output tokens, e.g. `0.15,0.60` (default: from genai-prices; local "
        "servers free)", Rates(), flags=("--price",))
    max_cost: float | None = option(
        None, "spending cap in USD: no request starts that could take the batch past it", Number(minimum=0),
        flags=("--max-cost",), example="e.g. max_cost=0.50 (USD)", online_only=True)
    dry_run: bool = option(
        False, "send nothing: show prompt tokens, the worst case and the cost range", Flag(),
        flags=("--dry-run",), example="e.g. dry_run=True to send nothing", panel_takes=False, resent=False)
    tier: str | None = option(
        None, "service tier, sent as `service_tier` where the provider has one: `flex` (OpenAI: Batch API prices, "
        "slower; Groq: higher rate limits), `priority` or `default`", Choice("default", "flex", "priority"),
        flags=("--tier",), example="e.g. tier='flex', or leave it unset", online_only=True)
    api: str = option(
        "auto", "wire format: `chat` (/v1/chat/completions), `responses` (/v1/responses) or `auto` (chat, and "
        "responses for a model that answers only there, remembered for that model)", Choice("chat", "responses", "auto"),
        flags=("--api",), example="api='auto' (default), 'chat' or 'responses'")
    transport: str = option(
        "auto", "how requests travel: `auto` (aiohttp; in a browser, its fetch; the built-in simulator started in "
        "a browser answers in-process), `aiohttp`, `fetch` (browser only), or `in-process`: the built-in simulator "
        "answered by direct calls, no socket, no thread", Choice("auto", "aiohttp", "fetch", "in-process"),
        flags=("--transport",), example="transport='auto' (default), or 'in-process' for the simulator with no socket")
    via: str = option(
        "online", "`online` (requests from here, default) or `batch` (the provider's Batch API: about half price, "
        "results within 24 h; re-running the cell reattaches)", Choice("online", "batch"),
        flags=("--via",), example="via='online' (default) or via='batch' (the provider's Batch API)",
        resent=False, judged=True)  # resend() takes its own via=
    poll_interval: float | None = option(
        None, "with via='batch': first seconds between polls of the job (it grows; default by endpoint)",
        Number(above=0), flags=("--poll-interval",), example="e.g. poll_interval=5 (seconds)", resent=False)
    job_size: int | None = option(
        None, "with via='batch': most requests per job (default: the provider's limit); more are split",
        WholeNumber(1), flags=("--job-size",), example="e.g. job_size=10000 requests per job", resent=False)
    schema: Schema | None = option(
        None, "the shape of each reply: a Pydantic model, a JSON Schema dict or `field: type, ...`; replies are "
        "validated into `row.data` and `to_pandas()` columns", SchemaKind(),
        flags=("--schema",), example=SCHEMA_EXAMPLE)
    images: list[Any] | None = option(
        None, "one image per prompt, or a list of them: a path, an http(s) URL, bytes or a PIL image (a list, a "
        "Series, or on the magic line a variable or `df.col`); sent as each API's image part", Column(),
        flags=("--images",), example="e.g. images=df.photo (magic: --images df.photo)", resent=False)
    files: list[Any] | None = option(
        None, "one PDF per prompt (a path or bytes), where the provider takes documents", Column(),
        flags=("--files",), example="e.g. files=['a.pdf', 'b.pdf'] (magic: --files NAME)", resent=False)
    image_detail: str | None = option(
        None, "how closely the model looks at each image, where the provider has it: `low` (cheapest), `high` or "
        "`auto`", Choice("low", "high", "auto"), flags=("--image-detail",), example="e.g. image_detail='low'")
    on_bad_input: str = option(
        "error", "an image or file that cannot be sent (missing, not an image, too big, too many): `error` stops "
        "the batch before any request; `skip` makes it that row's error and sends the rest",
        Choice("error", "skip"), flags=("--on-bad-input",), example="on_bad_input='error' (default) or 'skip'",
        resent=False)
    expected: tuple[Any, ...] | None = option(
        None, "a reference answer per prompt (a list or Series; magic: a variable, or a column of the `--over` frame): "
        "`row.expected`, and what the checks compare with", Expected(), flags=("--expected",),
        example="e.g. expected=[4, 9, 16] (magic: --expected answers)",
        resent=False)  # the rows sent again keep their own
    checks: dict[str, Check] | None = option(
        None, "checks of each reply: names -> a built-in (`exact`, `contains`, `number`, `json`, `regex:PATTERN`) or "
        "a function of the row; `row.checks`, `check.NAME` columns, pass rates in the summary", CheckMap(),
        flags=("--checks",), each="--check", example=CHECKS_EXAMPLE, resent=False)
    judge: ModelItem | None = option(
        None, "a model that judges each reply (after the batch, as a batch of its own): named as a `models=` item, "
        "e.g. `sim:sim-judge`, `openai:gpt-4o-mini` or a dict; verdicts in `row.judge`, `judge.score` columns",
        JudgeModel(), flags=("--judge",), panel=True,
        example="e.g. judge='sim:sim-judge' or judge={'provider': 'openai', 'model': 'gpt-4o-mini'}", resent=False)
    rubric: str | None = option(
        None, "what the judge is asked: a text over `{prompt}`, `{reply}` and `{expected}` (default: correct and "
        "helpful, against the reference when there is one)", Rubric(), flags=("--rubric",), example=RUBRIC_EXAMPLE,
        resent=False)
    judge_scale: Scale = option(
        Scale(1, 5), "the judge's verdict: a score `low-high` (default `1-5`) or `pass/fail`", ScaleKind(),
        flags=("--judge-scale",), example="e.g. judge_scale='1-10' or 'pass/fail'", resent=False)
    provider: str | None = option(
        None, "openai, xai, anthropic, gemini, openrouter, groq, together, deepseek, mistral, fireworks, cerebras, "
        "ollama, vllm or sim", Text(checked=False),
        flags=("--provider",), panel=True, judged=True)
    base_url: str | None = option(
        None, "any OpenAI-compatible base URL, e.g. http://localhost:8000/v1", Text(checked=False),
        flags=("--base-url",), panel=True, judged=True)
    api_key_env: str | None = option(
        None, "NAME of the environment variable holding the key (never the key)", Text(checked=False),
        flags=("--api-key-env",), judged=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue  # unset: the provider's or server's default
            spec = spec_of(f)
            setattr(self, f.name, spec.kind.check(f.name, value, spec.example))
        if self.transport == ("fetch" if sys.platform != "emscripten" else "aiohttp"):
            raise ConfigError(f"transport={self.transport!r} cannot work here (fetch is a browser's; a browser has no "
                              "sockets for aiohttp): use transport='auto'")
        if self.tier == "flex" and self.timeout == DEFAULT_TIMEOUT:  # flex requests are slower: wait longer
            self.timeout = FLEX_TIMEOUT
        if self.schema is not None and "response_format" in self.params:
            raise ConfigError("schema= sets response_format itself: drop response_format from params")
        if self.models is not None and self.model is not None:
            raise ConfigError("model= and models= cannot be combined: put every model in models=[...]")
        if self.via == "batch":  # the provider runs a job at its own pace
            refused = [name for name in ONLINE_ONLY if getattr(self, name) != OPTIONS[name][0]]
            if refused:
                raise ConfigError(f"{', '.join(refused)} cannot be used with via='batch' (the provider runs the "
                                  "job whole, at its own pace): drop them (see the cost first with dry_run=True), "
                                  "or use via='online'")

    @property
    def reply_bound(self) -> int | None:
        """The most tokens a reply may have, as the request says (max_tokens, or max_completion_tokens)."""
        bound = self.params.get("max_completion_tokens", self.max_tokens)
        return bound if isinstance(bound, int) and not isinstance(bound, bool) else self.max_tokens


def spec_of(f: Field[Any]) -> OptionSpec:
    return f.metadata["spec"]  # type: ignore[no-any-return]


OPTIONS: dict[str, tuple[Any, OptionSpec]] = {
    f.name: (f.default_factory() if callable(f.default_factory) else f.default, spec_of(f))
    for f in fields(BatchOptions)
}
"""name -> (default, spec), in declaration order."""

ONLINE_ONLY = tuple(name for name, (_, spec) in OPTIONS.items() if spec.online_only)  # what a Batch API job cannot do
RESENT = tuple(name for name, (_, spec) in OPTIONS.items() if spec.resent)  # what resend() takes from the batch


def options_from(values: Mapping[str, Any]) -> BatchOptions:
    """The options of a batch as given by name (``batch(**options)``), checked; a name that is not an option is
    a ConfigError that suggests the option meant."""
    unknown = [name for name in values if name not in OPTIONS]
    if unknown:
        raise ConfigError(unknown_option(unknown[0], list(OPTIONS), "see help(nbtools.batch) for the options"))
    return BatchOptions(**values)


def unknown_option(name: str, known: list[str], fix: str) -> str:
    """``unknown option 'concurency' (did you mean 'concurrency'?)``, or with no option close to it, the ``fix``."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown option {name!r} (did you mean {close[0]!r}?)" if close else f"unknown option {name!r}: {fix}"


def options_doc() -> str:
    """The options as a docstring section, for ``batch``, ``abatch`` and ``start``."""
    lines = ["", "    Options (the same names in ``%%llm_batch`` and the panel):"]
    for name, (default, spec) in OPTIONS.items():
        lines.append(f"        {name} = {default!r}: {spec.help}")
    return "\n".join(lines) + "\n"


def options_table() -> str:
    """The README's option table (Markdown), one row per option; tests check the README holds it."""
    rows = ["| magic | Python API | default | meaning |", "|---|---|---|---|"]
    for name, (default, spec) in OPTIONS.items():
        flags = list(spec.flags) + ([spec.each] if spec.each else [])
        if isinstance(spec.kind, Flag) and spec.kind.negative:
            flags.append(spec.kind.negative)
        shown = "" if default is None or default == {} else f"`{default!r}`"
        rows.append(f"| {', '.join(f'`{flag}`' for flag in flags) or '(API only)'} | `{name}=` | {shown} | {spec.help} |")
    return "\n".join(rows)
