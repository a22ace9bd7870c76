"""``schema=``: what a reply must look like, declared as a Pydantic model, a JSON Schema dict or a short form.

Every form becomes one Schema: a JSON Schema (what is sent), a Pydantic v2 model (what validates the
reply) and the columns it gives (``to_pandas()``). How a server is asked for it is nbtools._engine.wire's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

from nbtools._base.checks import sendable
from nbtools._base.errors import ConfigError

EXAMPLE = ("e.g. schema=Review (a Pydantic model), a JSON Schema dict, or "
           "'sentiment: positive|negative|mixed, score: int, reasons: list[str]'")
_SHORT_TYPES = {"str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
                "bool": {"type": "boolean"}}
_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


class InvalidOutput(Exception):
    """A reply that does not fit the schema; the message is the validator's, in one line."""


@dataclass(frozen=True)
class Column:
    """One field as a to_pandas() column: ``a.b`` for nested fields."""

    name: str
    dtype: str  # "Int64", "Float64", "boolean", "string", "category" or "object" (lists, anything else)
    categories: tuple[Any, ...] = ()


class Schema:
    """A reply's shape: ``json_schema`` as declared, ``validate(text)`` the Pydantic v2 check, ``columns`` the
    table it gives."""

    def __init__(self, json_schema: dict[str, Any], model: Any, name: str, source: str) -> None:
        self.json_schema = json_schema
        self.model = model  # a pydantic.BaseModel subclass
        self.name = name
        self.source = source  # "model", "dict" or "short form", for repr
        defs = json_schema.get("$defs", {})
        root = frozenset(f"#/$defs/{k}" for k, v in defs.items() if {**v, "$defs": defs} == json_schema)  # _object_root
        self.columns = _columns(json_schema, defs, "", root)
        self.digest = hashlib.sha256(json.dumps(json_schema, sort_keys=True).encode()).hexdigest()[:16]
        # Only a model with a non-nullable default can refuse the nulls a strict reply sends: the rest skip the walk.
        self._drops_nulls = source == "model" and _has_non_nullable_optional(json_schema, json_schema.get("$defs", {}))

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, fields={[c.name for c in self.columns]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def validate(self, text: str) -> dict[str, Any]:
        """The reply as a dict of plain JSON values, or InvalidOutput with the validator's message."""
        try:
            raw = json.loads(_unfenced(text) if text.lstrip().startswith("`") else text)
        except ValueError as exc:
            raise InvalidOutput(f"the reply is not JSON ({exc})") from None
        if self._drops_nulls:
            raw = _drop_nulls(raw, self.json_schema, self.json_schema.get("$defs", {}))
        try:
            value = self.model.model_validate(raw)
        except _validation_error() as exc:
            problems = [f"{'.'.join(map(str, e['loc'])) or '(the reply)'}: {e['msg']}" for e in exc.errors()]
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise InvalidOutput("; ".join(problems[:5]) + more) from None
        return value.model_dump(mode="json", by_alias=True)  # type: ignore[no-any-return]  # keys as in the schema


def _validation_error() -> Any:
    from pydantic import ValidationError  # only once something failed: the import is slow per call

    return ValidationError


def to_schema(value: Any, name: str = "schema") -> Schema:
    """A Pydantic model class, a JSON Schema dict or the short form, as a Schema; else a one-line ConfigError."""
    if isinstance(value, Schema):
        return value
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - a dependency
        raise ConfigError("schema= needs pydantic 2.9.2 or newer: pip install 'pydantic>=2.9.2'") from None
    if isinstance(value, type) and issubclass(value, BaseModel):
        return Schema(_object_root(value.model_json_schema()), value, _wire_name(value.__name__), "model")
    if isinstance(value, BaseModel):
        raise ConfigError(f"{name}= got an instance of {type(value).__name__}: pass the class itself, "
                          f"e.g. {name}={type(value).__name__}")
    if isinstance(value, dict):
        return _from_json_schema(value, name, "dict")
    if isinstance(value, str) and value.strip():
        return _from_json_schema(_short_form(value, name), name, "short form")
    raise ConfigError(f"{name}={value!r} is neither a Pydantic model class, a JSON Schema dict nor the short "
                      f"form: {EXAMPLE}")


# -- building ---------------------------------------------------------------------------------------
def _wire_name(text: str) -> str:
    """A name response_format accepts: ^[a-zA-Z0-9_-]{1,64}$."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)[:64] or "reply"


def _object_root(schema: dict[str, Any]) -> dict[str, Any]:
    """A model that holds itself is given as ``{"$ref": ..., "$defs": ...}``: the root must be the object itself."""
    ref, defs = schema.get("$ref"), schema.get("$defs", {})
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
        return {**defs[ref[8:]], "$defs": defs}
    return schema


def _short_form(text: str, name: str) -> dict[str, Any]:
    """``"sentiment: positive|negative, score: int, reasons: list[str], note: str?"`` as a JSON Schema."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for item in _split_top(text):
        field, colon, kind = (part.strip() for part in item.partition(":"))
        if not colon or not field.isidentifier() or not kind:
            raise ConfigError(f"{name}: cannot read {item.strip()!r} in the short form: write `field: type` pairs "
                              "separated by commas, e.g. 'score: int, label: good|bad, tags: list[str], note: str?'")
        optional = kind.endswith("?")
        properties[field] = _short_type(kind.rstrip("?").strip(), name)
        if not optional:
            required.append(field)
    return {"title": "reply", "type": "object", "properties": properties, "required": required}


def _short_type(kind: str, name: str) -> dict[str, Any]:
    if kind in _SHORT_TYPES:
        return dict(_SHORT_TYPES[kind])
    match = re.fullmatch(r"list\[(.+)\]", kind)
    if match:
        return {"type": "array", "items": _short_type(match.group(1).strip(), name)}
    if "|" in kind:
        words = [w.strip() for w in kind.split("|")]
        if all(words):
            return {"type": "string", "enum": words}
    raise ConfigError(f"{name}: unknown type {kind!r} in the short form: use str, int, float, bool, list[T] or "
                      "choices like positive|negative (add ? for an optional field)")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i for i in items if i.strip()]


def _from_json_schema(schema: dict[str, Any], name: str, source: str) -> Schema:
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        raise ConfigError(f"{name}= must describe a JSON object with properties (\"type\": \"object\", "
                          "\"properties\": {...}): a reply becomes one row of columns")
    sendable(f"{name}=", schema, "use plain strings, numbers, lists and dicts")
    builder = _ModelBuilder(schema.get("$defs", {}), name)
    title = str(schema.get("title") or "reply")
    return Schema(schema, builder.model(schema, title), _wire_name(title), source)


class _ModelBuilder:
    """A Pydantic model from a JSON Schema (the subset structured output uses), so Pydantic validates dicts too."""

    def __init__(self, defs: dict[str, Any], name: str) -> None:
        self.defs, self.name, self.count = defs, name, 0

    def model(self, node: dict[str, Any], title: str) -> Any:
        from pydantic import ConfigDict, create_model

        required = set(node.get("required", ()))
        fields: dict[str, Any] = {}
        for key, sub in node["properties"].items():
            annotation = self.type_of(sub, f"{title}_{key}")
            fields[key] = (annotation, ...) if key in required else (Optional[annotation], None)
        self.count += 1
        return create_model(_wire_name(title).replace("-", "_") or f"Model{self.count}",
                            __config__=ConfigDict(extra="ignore"), **fields)

    def type_of(self, node: Any, title: str) -> Any:
        if not isinstance(node, dict):
            raise ConfigError(f"{self.name}: {node!r} is not a JSON Schema: each property needs a dict like "
                              "{\"type\": \"string\"}")
        node = _resolve(node, self.defs)
        if "enum" in node or "const" in node:
            values = tuple(node["enum"]) if "enum" in node else (node["const"],)
            return Literal[values]
        options = node.get("anyOf") or node.get("oneOf")
        kind = node.get("type")
        if isinstance(kind, list):
            options = [{**node, "type": k} for k in kind]
        if options:
            types = [self.type_of(o, title) for o in options]
            union = types[0]
            for t in types[1:]:
                union = union | t
            return union
        if kind in _PY_TYPES:
            return _PY_TYPES[kind]
        if kind == "null":
            return type(None)
        if kind == "array":
            return list[self.type_of(node.get("items", {"type": "string"}), title)]  # type: ignore[misc]
        if kind == "object" and isinstance(node.get("properties"), dict):
            return self.model(node, title)
        if kind == "object":
            return dict[str, Any]
        raise ConfigError(f"{self.name}: cannot read the JSON Schema part {json.dumps(node)[:80]}: use type "
                          "string, integer, number, boolean, array, object, enum or anyOf")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
        return {**defs[ref[8:]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _nullable(node: dict[str, Any], defs: dict[str, Any]) -> bool:
    node = _resolve(node, defs)
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(o, dict) and _nullable(o, defs) for o in node.get("anyOf") or node.get("oneOf") or ())


def _drop_nulls(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A strict reply sends null for a field it leaves out; where null is not allowed, treat it as left out."""
    node = _resolve(node, defs)
    options = [o for o in node.get("anyOf", ()) if isinstance(o, dict) and o.get("type") != "null"]
    if len(options) == 1:  # Optional[X]: the value is an X (or null)
        node = _resolve(options[0], defs)
    if isinstance(value, dict) and isinstance(node.get("properties"), dict):
        props = node["properties"]
        return {k: _drop_nulls(v, props[k], defs) if k in props else v for k, v in value.items()
                if not (v is None and k in props and not _nullable(props[k], defs))}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_drop_nulls(v, node["items"], defs) for v in value]
    return value


def _has_non_nullable_optional(node: Any, defs: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return False
        seen = seen | {ref}
    node = _resolve(node, defs)
    props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
    required = set(node.get("required", ()))
    if any(k not in required and not _nullable(v, defs) for k, v in props.items() if isinstance(v, dict)):
        return True
    children = [*props.values(), node.get("items"), *node.get("anyOf", ()), *node.get("oneOf", ())]
    return any(_has_non_nullable_optional(c, defs, seen) for c in children)


def _unfenced(text: str) -> str:
    """A reply in a Markdown code fence (servers asked by system message often add one), without it."""
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return match.group(1) if match else text


def _columns(node: dict[str, Any], defs: dict[str, Any], prefix: str = "",
             seen: frozenset[str] = frozenset()) -> list[Column]:
    node = _resolve(node, defs)
    found: list[Column] = []
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        sub = sub if isinstance(sub, dict) else {}
        union = sub.get("anyOf") or sub.get("oneOf") or ()
        options = [o for o in union if isinstance(o, dict) and o.get("type") != "null"]
        if len(options) == 1:  # Optional[X]: the column of X
            sub = options[0]
        ref = sub.get("$ref")
        if isinstance(ref, str) and ref in seen:  # a model that holds itself: one column of dicts, not forever
            found.append(Column(name, "object"))
            continue
        inner = seen | {ref} if isinstance(ref, str) else seen
        sub = _resolve(sub, defs)
        kind = sub.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            kind = kinds[0] if len(kinds) == 1 else None
        if "enum" in sub:
            found.append(Column(name, "category", tuple(sub["enum"])))
        elif kind == "object" and isinstance(sub.get("properties"), dict):
            found += _columns(sub, defs, name + ".", inner)
        else:
            found.append(Column(name, {"integer": "Int64", "number": "Float64", "boolean": "boolean",
                                       "string": "string"}.get(kind or "", "object")))
    return found
