"""The one-line message for a failure that stops a whole batch: what was refused, and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtools._base.options import OPTIONS
from nbtools._engine import failures
from nbtools._engine.endpoints import PROFILES, Endpoint
from nbtools._engine.wire import ONLY_RESPONSES

if TYPE_CHECKING:
    from nbtools._engine.failures import RequestFailed

# Request fields that options set, by the option's name: the fix names the option, not the wire field.
_OPTION_OF_FIELD = {"temperature": "temperature", "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
                    "max_output_tokens": "max_tokens", "stream": "stream"}


def _leave_out(field: str) -> str:
    """The fix for a refused request field: the option (and its magic flag) that sent it, else params."""
    option = _OPTION_OF_FIELD.get(field)
    if option is None:
        return f"leave {field!r} out of params= (magic: --params)"
    flags = "/".join(OPTIONS[option][1].flags)
    return f"leave {option}= out (magic: {flags}), or its key in params="


def _key_source(endpoint: Endpoint, key_env: str | None) -> str:
    if key_env:
        return f"the key in {key_env}"
    profile = PROFILES.get(endpoint.provider)
    if profile is not None and profile.key_env and endpoint.api_key:
        return f"the key in {profile.key_env}"
    return "the key" if endpoint.api_key else "the request (no key was sent)"


def stop_message(exc: RequestFailed, endpoint: Endpoint, model: str | None, key_env: str | None = None) -> str:
    """Why the batch stopped, for ``exc`` of a batch-wide kind (its text is already redacted)."""
    key = _key_source(endpoint, key_env)
    listing = (f"nbtools.models(provider={endpoint.provider!r})" if endpoint.provider in PROFILES
               else "nbtools.models(base_url=...)")
    kind = exc.kind
    if kind == failures.AUTH:
        fix = (f"set a valid key in {key_env or PROFILES[endpoint.provider].key_env} before starting Jupyter"
               if key_env or (endpoint.provider in PROFILES and PROFILES[endpoint.provider].key_env)
               else "pass api_key_env='NAME' of the variable that holds a valid key")
        head = f"{endpoint.host} refused {key}" if endpoint.api_key else f"{endpoint.host} needs a key, and none was sent"
    elif kind == failures.PERMISSION:
        head = f"{key} is not allowed to use model {model!r} at {endpoint.host}"
        fix = "use a model the key may use (list them with " + listing + "), or a key with access"
    elif kind == failures.PARAMETER:
        field = exc.field or "a request field"
        head = f"model {model!r} at {endpoint.host} does not accept {field!r}"
        fix = _leave_out(field) if exc.field else "leave out the option the message names"
    elif kind == failures.QUOTA:
        head = f"the account behind {key} has no quota or credit left at {endpoint.host}"
        fix = "add credit or raise the limit at the provider, or use another key: retrying will not help"
    elif ONLY_RESPONSES in str(exc).lower():  # api='chat' kept it off /v1/responses
        head = f"model {model!r} at {endpoint.host} answers only on /v1/responses"
        fix = "pass api='auto' or api='responses' (magic: --api responses)"
    else:
        head = f"model {model!r} or the API route was not found at {endpoint.host}"
        fix = f"check the model name (list them with {listing}) and base_url"
    return f"batch stopped: {head} ({exc}); {fix}; the rows not sent run on a re-run"
