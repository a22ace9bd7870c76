"""Structured output in the simulator: OpenAI's checks on ``response_format``, and replies that fit the schema.

A strict schema must close every object and require every property, or the request is refused with the
400 OpenAI sends (its wording as quoted in dottxt-ai/outlines issue 844, moeru-ai/xsai issue 202 and
vercel/ai issue 6484: "Invalid schema for response_format 'NAME': In context=(), 'additionalProperties' is
required to be supplied and to be false.", and "In context=('properties', ...), 'required' is required to
be supplied and to be an array including every key in properties. Missing 'roles'."). Values are drawn
from a hash of the request, so one prompt always gets the same reply; they look like what the field's
name asks for (a score is a small number, a sentiment follows the words of the prompt).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from typing import Any

from nbtools.sim.protocol import BadRequest

REFUSAL = "I'm sorry, but I can't help with that request."
_POSITIVE = re.compile(r"\b(love|great|excellent|perfect|amazing|good|happy|best|fast|works)\b", re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(hate|terrible|awful|broke|broken|bad|worst|slow|refund|late|poor|never)\b", re.IGNORECASE)
_DIRECTIVE = re.compile(r"\[\[sim:[^\]]*\]\]")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_SIZE = re.compile(r"\(image (\d+)x(\d+) px")


def schema_of(response_format: Any) -> tuple[dict[str, Any] | None, str]:
    """The schema a request asks for and its name, or (None, "") for none; BadRequest as OpenAI refuses it."""
    if response_format is None:
        return None, ""
    if not isinstance(response_format, dict) or response_format.get("type") not in ("text", "json_object", "json_schema"):
        raise BadRequest("Invalid value for 'response_format.type': expected one of 'text', 'json_object' or "
                         "'json_schema'.", "response_format")
    if response_format["type"] != "json_schema":
        schema = response_format.get("schema")  # the older dialect's json_object + schema
        return (schema, "reply") if isinstance(schema, dict) else (None, "")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
        raise BadRequest("Missing required parameter: 'response_format.json_schema'.", "response_format")
    name, schema = spec["name"], spec["schema"]
    if spec.get("strict"):
        problem = _strict_problem(schema, ())
        if problem:
            raise BadRequest(f"Invalid schema for response_format '{name}': {problem}", "response_format")
    return schema, name


def _strict_problem(node: Any, context: tuple[str, ...]) -> str | None:
    """The first thing a strict schema breaks (depth first, from ``node`` down), as OpenAI words it; or None."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object" or "properties" in node:
        problem = _open_object(node, f"In context={context!r}, ")
        if problem is not None:
            return problem
    for sub, where in _subschemas(node, context):
        if (problem := _strict_problem(sub, where)) is not None:
            return problem
    return None


def _open_object(node: dict[str, Any], where: str) -> str | None:
    """What an object schema lacks to be closed, or None: additionalProperties false, every property required."""
    if node.get("additionalProperties") is not False:
        return f"{where}'additionalProperties' is required to be supplied and to be false."
    missing = [k for k in node.get("properties", {}) if k not in node.get("required", [])]
    if missing:
        return (f"{where}'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'.")
    return None


def _subschemas(node: dict[str, Any], context: tuple[str, ...]) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """The schemas just inside ``node``, each with its context, in the order they are checked."""
    for key, sub in node.get("properties", {}).items():
        yield sub, (*context, "properties", key)
    if "items" in node:
        yield node["items"], (*context, "items")
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(node.get(key, ())):
            yield sub, (*context, key, str(i))
    for name, sub in node.get("$defs", {}).items():
        yield sub, (*context, "$defs", name)


def fake_reply(schema: dict[str, Any], prompt: str, seed: bytes, *, invalid: bool) -> str:
    """A JSON reply that fits ``schema`` (or, with ``invalid``, lacks its first required field)."""
    rng = random.Random(seed)
    prompt = _DIRECTIVE.sub("", prompt).rpartition(": ")[2]  # the item, after an instruction such as "Classify: "
    value = _value(schema, schema.get("$defs", {}), prompt, rng, "")
    if invalid and isinstance(value, dict) and value:
        value.pop(next(iter(value)))
    return json.dumps(value, ensure_ascii=False)


def _value(node: dict[str, Any], defs: dict[str, Any], prompt: str, rng: random.Random, name: str,
           depth: int = 0) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node = defs.get(ref[8:], {})
    options = [o for o in node.get("anyOf", ()) if isinstance(o, dict) and o.get("type") != "null"]
    if options:  # an optional field: usually filled in, sometimes left null (always, deep in a model that holds itself)
        nullable = len(options) < len(node["anyOf"])
        if nullable and (depth > 2 or rng.random() < 0.2):
            return None
        return _value(options[0], defs, prompt, rng, name, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "enum" in node:
        return _choice(list(node["enum"]), prompt, rng)
    if "const" in node:
        return node["const"]
    if kind == "object":
        return {key: _value(sub, defs, prompt, rng, key, depth + 1) for key, sub in node.get("properties", {}).items()}
    if kind == "array":
        if depth > 2:
            return []
        return [_value(node.get("items", {"type": "string"}), defs, prompt, rng, name, depth + 1)
                for _ in range(rng.randint(1, 3))]
    return _scalar(kind, prompt, rng, name)


def _scalar(kind: Any, prompt: str, rng: random.Random, name: str) -> Any:
    """A value of a scalar type (``kind``, a JSON Schema type; anything else gives a string) for field ``name``."""
    if kind == "integer":
        size = _SIZE.search(prompt)  # an image's size, as the simulator read it
        if size and name in ("width", "height"):
            return int(size.group(1 if name == "width" else 2))
        if re.search(r"score|rating|stars|level", name):  # follows the prompt's lean, as a rating would
            low, high = {"positive": (4, 5), "negative": (1, 2), "mixed": (2, 4)}.get(_lean(prompt) or "", (1, 5))
            return rng.randint(low, high)
        return rng.randint(0, 100)
    if kind == "number":
        return round(rng.random(), 2) if re.search(r"confidence|prob|share|ratio", name) else round(rng.uniform(0, 100), 1)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    words = _WORDS.findall(prompt) or ["something"]
    start = rng.randrange(len(words))
    return " ".join(words[start : start + rng.randint(2, 4)])


def _lean(prompt: str) -> str | None:
    pos, neg = len(_POSITIVE.findall(prompt)), len(_NEGATIVE.findall(prompt))
    return "positive" if pos > neg else "negative" if neg > pos else "mixed" if pos else None


def _choice(values: list[Any], prompt: str, rng: random.Random) -> Any:
    """An enum value; for sentiment-like choices, the one the prompt's words lean to."""
    lowered = [str(v).lower() for v in values]
    named = [v for v, low in zip(values, lowered, strict=True) if re.search(rf"\b{re.escape(low)}\b", prompt.lower())]
    if len(named) == 1:  # the prompt (or what the simulator read off its image) names one: that one
        return named[0]
    lean = _lean(prompt)
    if lean in lowered and rng.random() < 0.9:
        return values[lowered.index(lean)]
    return rng.choice(values)
