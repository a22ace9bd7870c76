"""A run's manifest: what ran, where, with which settings, and what answered, so two runs can be told apart.

``result.manifest()`` builds one from a finished (or running) batch; ``save`` writes it as JSON (a private
file: 0600); ``Manifest.load`` reads one back; ``diff`` lists what differs between two runs. The API key is
never part of it: the options hold only the name of the variable that holds it, and base URLs lose any
``user:password@``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtools._base.options import OPTIONS, ModelItem
from nbtools._base.schemas import Schema
from nbtools._base.version import VERSION
from nbtools._engine.endpoints import _without_credentials
from nbtools._engine.private import write_private
from nbtools._engine.rows import OK

if TYPE_CHECKING:
    from nbtools._engine.state import BatchState

# What ``diff`` leaves out: what differs between any two runs (ids, times, totals, how the limit went).
UNCOMPARED = ("request_ids", "concurrency", "started", "ended", "totals")


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """An option's value as JSON: a schema by its digest, a model list by its items' settings (never a key)."""
    if isinstance(value, Schema):
        return f"schema {value.digest}"
    if isinstance(value, tuple) and value and isinstance(value[0], ModelItem):
        return [{"label": item.label, **{k: _plain(v) for k, v in item.settings.items() if k != "api_key"}}
                for item in value]
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def _price_data_version() -> str | None:
    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:
        return None


def _seen(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})


def build(state: BatchState, template: str | None = None) -> dict[str, Any]:
    """The manifest of ``state``'s batch, as plain JSON-ready data."""
    options, rows, price = state.options, state.rows, state.price
    ok = [r for r in rows if r.status == OK]
    ended = state.started_at + timedelta(seconds=state.elapsed()) if state.done else None
    several = getattr(state, "by_model", None)  # a several-model batch: each endpoint's own record too
    return {
        "nbtools": VERSION,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "provider": state.endpoint.provider,
        "base_url": _without_credentials(state.endpoint.base_url),
        "model": options.model or state.model,
        "served_models": _seen(r.served_model for r in rows),
        "system_fingerprints": _seen(r.system_fingerprint for r in rows),
        "request_ids": [r.request_id for r in rows],
        "hashes": {
            "template": _digest(template),
            "system": _digest(options.system),
            "schema": None if options.schema is None else options.schema.digest,
            "prompts": _digest(json.dumps([r.prompt for r in rows], ensure_ascii=False, sort_keys=True)),
        },
        "options": {name: _plain(getattr(options, name)) for name in OPTIONS},
        "concurrency": {"asked": options.concurrency, "peak": state.peak, "limits": state.limit_path},
        "tier": options.tier,
        "api": options.api,
        "via": options.via,
        "price_data": _price_data_version(),
        "price": None if price is None else {"input": price.input, "output": price.output,
                                             "cached_input": price.cached_input, "source": price.source},
        "started": state.started_at.isoformat(),
        "ended": ended.isoformat() if ended is not None else None,
        "totals": {
            "rows": len(rows), "ok": len(ok), "errors": sum(r.status == "error" for r in rows),
            "prompt_tokens": sum(r.prompt_tokens or 0 for r in ok),
            "completion_tokens": sum(r.completion_tokens or 0 for r in ok),
            "cached_tokens": sum(r.cached_tokens or 0 for r in ok),
            "cost": sum(r.cost or 0.0 for r in rows),
        },
        **({"by_model": {label: build(part) for label, part in several.items()}} if several else {}),
    }


class Manifest(dict[str, Any]):
    """What a run was: versions, endpoint, options, prompt hashes, what answered, times and totals (never a key)."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write it as JSON to ``path``, readable by its owner only (0600)."""
        target = Path(path)
        write_private(target, json.dumps(self, indent=2, ensure_ascii=False) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def diff(self, other: Manifest | dict[str, Any] | str | os.PathLike[str]) -> dict[str, tuple[Any, Any]]:
        """What differs from ``other`` (a manifest, or the path of a saved one): ``{"options.temperature": (0.2,
        0.7), ...}``, this run's value first. Times, totals and request ids differ between any two runs: left out."""
        theirs = other if isinstance(other, dict) else Manifest.load(other)
        found: dict[str, tuple[Any, Any]] = {}
        _compare_runs("", self, theirs, found)
        return found


def _compare_runs(where: str, ours: dict[str, Any], theirs: dict[str, Any], found: dict[str, tuple[Any, Any]]) -> None:
    """Two manifests (or two endpoints' records in them), key by key, but what differs between any two runs."""
    for key in dict.fromkeys([*ours, *theirs]):
        mine, other = ours.get(key), theirs.get(key)
        if key in UNCOMPARED:
            continue
        if key == "by_model" and isinstance(mine, dict) and isinstance(other, dict):
            for label in dict.fromkeys([*mine, *other]):
                if isinstance(mine.get(label), dict) and isinstance(other.get(label), dict):
                    _compare_runs(f"{where}by_model.{label}.", mine[label], other[label], found)
                else:
                    found[f"{where}by_model.{label}"] = (mine.get(label) is not None, other.get(label) is not None)
        else:
            _compare(f"{where}{key}", mine, other, found)


def _compare(where: str, ours: Any, theirs: Any, found: dict[str, tuple[Any, Any]]) -> None:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in dict.fromkeys([*ours, *theirs]):
            _compare(f"{where}.{key}", ours.get(key), theirs.get(key), found)
    elif ours != theirs:
        found[where] = (ours, theirs)
