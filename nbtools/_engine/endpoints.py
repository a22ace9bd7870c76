"""Where requests go: provider profiles, API keys from the environment, the simulator default."""

from __future__ import annotations

import os
import sys
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlsplit

from nbtools._base.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """A provider nbtools knows by name (``provider=``): where it is, where its key comes from, what it defaults to."""

    name: str
    base_url: str
    key_env: str | None  # environment variable holding the key
    key_required: bool
    default_model: str | None  # None: ask the server's /v1/models
    base_url_env: str | None = None  # lets a user point a profile elsewhere
    tokens_field: str = "max_tokens"  # the request field max_tokens= is sent as
    # Seconds the plain x-ratelimit-limit-{requests,tokens} headers count over, where not a minute.
    rate_windows: tuple[tuple[str, float], ...] = ()
    tiers: tuple[str, ...] = ()  # the service_tier values it takes (tier=)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        # OpenAI's own API: reasoning models refuse max_tokens ("Use 'max_completion_tokens' instead").
        # service_tier: platform.openai.com/docs/api-reference/chat/create (default, flex, priority)
        Profile("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", True, "gpt-4o-mini", "OPENAI_BASE_URL",
                "max_completion_tokens", tiers=("default", "flex", "priority")),
        Profile("xai", "https://api.x.ai/v1", "XAI_API_KEY", True, "grok-3-mini"),
        Profile("anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY", True, "claude-haiku-4-5"),
        # Google's OpenAI compatibility layer: ai.google.dev/gemini-api/docs/openai
        Profile("gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY", True,
                "gemini-2.5-flash"),
        # openrouter.ai/docs/api-reference/overview: an OpenAI-compatible router; models are "vendor/name"
        Profile("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", True, "openai/gpt-4o-mini"),
        # console.groq.com/docs/openai; its x-ratelimit-limit-requests is requests per day (console.groq.com/docs/rate-limits)
        # flex: console.groq.com/docs/flex-processing (on-demand prices, higher limits)
        Profile("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", True, "llama-3.1-8b-instant",
                rate_windows=(("requests", 86400.0),), tiers=("flex",)),
        # docs.together.ai/docs/openai-api-compatibility
        Profile("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", True,
                "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        # api-docs.deepseek.com: base_url https://api.deepseek.com (or .../v1, for OpenAI compatibility)
        Profile("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", True, "deepseek-chat"),
        # docs.mistral.ai/api
        Profile("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", True, "mistral-small-latest"),
        # docs.fireworks.ai/tools-sdks/openai-compatibility
        Profile("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", True,
                "accounts/fireworks/models/llama-v3p1-8b-instruct"),
        # inference-docs.cerebras.ai/resources/openai; rate-limit headers name their window (-day, -minute)
        Profile("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", True, "llama3.1-8b"),
        Profile("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY", False, None, "OLLAMA_BASE_URL"),
        Profile("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", False, None, "VLLM_BASE_URL"),
        Profile("sim", "", None, False, "sim-small"),
    )
}

SIM_NOTE = (
    "Simulated replies from the built-in simulator (no real model). To use one, set the key in the "
    "environment (e.g. OPENAI_API_KEY) and pass provider='openai' (magic: --provider openai), "
    "or set NBTOOLS_PROVIDER."
)


class Secret:
    """An API key that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint. ``api_key`` is a Secret; ``redact`` scrubs it from any text."""

    provider: str  # a profile name, or "custom"
    base_url: str
    default_model: str | None
    api_key: Secret | None = field(default=None, repr=False)
    simulated: bool = False

    @property
    def host(self) -> str:
        """host:port, without any user:password@ the URL may carry."""
        parts = urlsplit(self.base_url)
        if not parts.hostname:
            return "(no host)"
        return parts.hostname + (f":{parts.port}" if parts.port else "")

    @property
    def tokens_field(self) -> str:
        """The request field the reply bound (max_tokens=) goes under at this endpoint's provider."""
        profile = PROFILES.get(self.provider)
        return profile.tokens_field if profile is not None else "max_tokens"

    @property
    def rate_windows(self) -> dict[str, float]:
        """Seconds this provider's plain x-ratelimit-limit-* headers count over, where not a minute."""
        profile = PROFILES.get(self.provider)
        return dict(profile.rate_windows) if profile is not None else {}

    @property
    def note(self) -> str | None:
        return SIM_NOTE if self.simulated else None

    def __repr__(self) -> str:  # host only: a base URL may carry user:password@
        return f"Endpoint({self.provider!r}, host={self.host!r}, simulated={self.simulated})"

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key.reveal()}"}
        return {}

    @cached_property
    def _secrets(self) -> tuple[str, ...]:
        """The key and URL password, as sent and as a server might echo them (URL- or base64-encoded)."""
        parts = urlsplit(self.base_url)
        user, password = unquote(parts.username or ""), parts.password or ""
        found: list[str] = []
        for secret in (self.api_key.reveal() if self.api_key else "", password, unquote(password)):
            if len(secret) >= 4:
                found += [secret, quote(secret, safe=""), _b64(secret), _b64(f"Bearer {secret}")]
        if len(password) >= 4:  # sent as HTTP Basic auth
            found.append(_b64(f"{user}:{unquote(password)}"))
        return tuple(sorted(set(found), key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` without the API key or a password from the base URL."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class SimulatorHooks:
    """The built-in simulator, as this module sees it: plugged in by the package, so no import of it here."""

    start: Callable[[bool], str]  # start it (once; in-process, or behind a socket) and return its base URL
    owns: Callable[[str], bool]  # is this URL one of the simulators this process runs?
    list_price: Callable[[str], tuple[float, float, float] | None] = lambda model: None  # a named simulated model's price
    local: Callable[[str], Any] = lambda url: None  # the in-process server answering this URL, if one does


_simulator: SimulatorHooks | None = None


def use_simulator(hooks: SimulatorHooks) -> None:
    global _simulator
    _simulator = hooks


def simulated_price(model: str) -> tuple[float, float, float] | None:
    """The made-up list price (USD per million input, output tokens) of a named simulated model, if any."""
    return _simulator.list_price(model) if _simulator is not None else None


def local_server(base_url: str) -> Any:
    """The in-process server (a transport.local.LocalServer) that answers ``base_url``, or None."""
    return _simulator.local(base_url) if _simulator is not None else None


def _b64(text: str) -> str:
    return b64encode(text.encode()).decode().rstrip("=")


def _env_key(name: str | None) -> Secret | None:
    """The key in the environment variable ``name``; on Colab, else its Secrets entry of that name, if granted."""
    value = os.environ.get(name, "") if name else ""
    if not value and name and "google.colab" in sys.modules:
        value = _colab_secret(name)
    return Secret(value) if value else None


def _colab_secret(name: str) -> str:
    """Colab's Secrets (the key icon) hold keys where a browser has no environment: "" if absent or not granted."""
    try:
        from google.colab import userdata  # type: ignore[import-not-found]

        return str(userdata.get(name) or "")
    except Exception:  # not granted to this notebook, not there, or Secrets unavailable: as if unset
        return ""


# Where no environment can be set before the kernel starts (a browser), a key typed into a password prompt and
# kept in this kernel's memory only.
_SET_IN_MEMORY = ("import os, getpass; os.environ[{name!r}] = getpass.getpass('{name}: ') "
                  "(typed into a password field, kept in memory until the kernel restarts, never saved)")


def resolve_endpoint(
    provider: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    api_key_env: str | None = None,
    transport: str = "auto",
) -> Endpoint:
    """Turn the user's endpoint options into an Endpoint, or raise ConfigError saying how to fix them.

    Nothing given: ``$NBTOOLS_PROVIDER`` if set, else the built-in simulator (in-process with
    ``transport='in-process'``, and always in a browser, where a page can open no socket).
    """
    key = _given_key(api_key, api_key_env)
    if base_url is not None:
        endpoint = _url_endpoint(provider, base_url, key)
    else:
        endpoint = _provider_endpoint(provider or os.environ.get("NBTOOLS_PROVIDER") or "sim", key,
                                      transport == "in-process")
    if transport == "in-process" and local_server(endpoint.base_url) is None:
        raise ConfigError(f"transport='in-process' answers from the built-in simulator only, not {endpoint.host}: "
                          "drop base_url= and provider= (or use transport='auto')")
    return endpoint


def _given_key(api_key: str | None, api_key_env: str | None) -> Secret | None:
    """The key the options give, checked: from the variable api_key_env names (it must be set), else api_key."""
    if api_key_env is not None and (
        not isinstance(api_key_env, str) or not api_key_env or not api_key_env.replace("_", "").isalnum()
    ):
        raise ConfigError(  # the value is not repeated: it may be the key itself, pasted by mistake
            "api_key_env is not an environment variable name: pass the NAME of the variable that holds "
            "the key (e.g. api_key_env='MY_API_KEY'), never the key itself"
        )
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError("api_key must be a string: better, pass api_key_env='NAME' of the variable that holds it")
    key = Secret(api_key) if api_key else None
    if api_key_env:
        key = _env_key(api_key_env)
        if key is None:
            # Variable names are upper case by custom; anything else may be a pasted key: don't repeat it.
            name = f"{api_key_env} (api_key_env)" if api_key_env.isupper() else "named by api_key_env"
            raise ConfigError(
                f"the environment variable {name} is not set: set it before starting Jupyter "
                "(or with os.environ in a cell that does not show the key)"
            )
    return key


def _url_endpoint(provider: str | None, base_url: str, key: Secret | None) -> Endpoint:
    """The server at ``base_url``; a ``provider`` named with it gives its default model and key variable."""
    if not isinstance(base_url, str):
        raise ConfigError(f"base_url must be a string URL, not {type(base_url).__name__}: e.g. base_url='http://localhost:8000/v1'")
    base_url = base_url.strip()
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base_url={_without_credentials(base_url)!r} is not an http(s) URL with a host: "
            "pass e.g. base_url='http://localhost:8000/v1'"
        )
    profile = PROFILES.get(provider) if provider else None
    if provider and profile is None:
        _unknown(provider)
    if key is None and profile is not None:
        key = _env_key(profile.key_env)
    url = base_url.rstrip("/")
    return Endpoint(provider or "custom", url, profile.default_model if profile else None, key,
                    simulated=_is_our_simulator(url))


def _provider_endpoint(name: str, key: Secret | None, in_process: bool = False) -> Endpoint:
    """The provider ``name`` at its own URL (the simulator: started now), with its key variable's key if none given."""
    profile = PROFILES.get(name)
    if profile is None:
        _unknown(name)
    if profile.name == "sim":
        if _simulator is None:
            raise ConfigError("provider 'sim' is not available here: import nbtools (the package) to plug it in")
        return Endpoint("sim", _simulator.start(in_process), profile.default_model, None, simulated=True)
    if key is None:
        key = _env_key(profile.key_env)
    if key is None and profile.key_required:
        raise ConfigError(
            f"provider {name!r} needs an API key in the environment variable {profile.key_env}, which is "
            f"not set: {_how_to_set(profile.key_env)}, or use provider='sim' for the built-in simulator"
        )
    url = os.environ.get(profile.base_url_env or "", "") or profile.base_url
    return Endpoint(profile.name, url.rstrip("/"), profile.default_model, key)


def _how_to_set(name: str | None) -> str:
    if sys.platform == "emscripten":  # a browser kernel: no environment before it starts
        return "run " + _SET_IN_MEMORY.format(name=name)
    return f"set {name} before starting Jupyter (never type the key into a cell; on Colab: its Secrets)"


def _without_credentials(url: str) -> str:
    """``url`` for an error message: any user:password@ is dropped (it may hold a key)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url if "@" not in url else "(a URL with credentials)"
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def _is_our_simulator(url: str) -> bool:
    return _simulator is not None and _simulator.owns(url)


def _unknown(name: str) -> NoReturn:
    raise ConfigError(
        f"unknown provider {name!r}: choose one of {', '.join(PROFILES)}, "
        "or pass base_url= for any other OpenAI-compatible server"
    )
