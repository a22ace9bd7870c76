"""Input tokens of an image, from its size in pixels, by each provider's published rule; None where none is known.

- OpenAI, tiles (platform.openai.com/docs/guides/images-vision, "Calculating costs"): ``detail: low`` costs the
  base tokens; otherwise the image is scaled to fit in 2048x2048, then (if larger) so that its shortest side is
  768 px, and costs the base plus a price per 512 px tile covering it. gpt-4o, gpt-4.1, gpt-4.5: 85 + 170 a tile;
  gpt-4o-mini: 2833 + 5667 a tile.
- OpenAI, patches (the same guide): 32 px patches covering the image, at most 1536 (a larger image is scaled down to
  fit), times the model's multiplier: gpt-4.1-mini 1.62, gpt-4.1-nano 2.46, o4-mini 1.72.
- Anthropic (docs.claude.com/en/docs/build-with-claude/vision, "Calculate image costs"): width * height / 750.
- The simulator prices images as gpt-4o does.
Other models, and URLs (not read, so of unknown size): None, shown as unknown, never as zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from nbtools._base.attachments import Attachment

_TILES = {"gpt-4o-mini": (2833, 5667), "gpt-4o": (85, 170), "gpt-4.1": (85, 170), "gpt-4.5": (85, 170)}
_PATCHES = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72}
MAX_PATCHES = 1536


def tiles(width: int, height: int, detail: str | None, base: int = 85, per_tile: int = 170) -> int:
    """OpenAI's tile rule."""
    if detail == "low":
        return base
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = int(width * scale), int(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = int(width * scale), int(height * scale)
    return base + per_tile * math.ceil(width / 512) * math.ceil(height / 512)


def patches(width: int, height: int, multiplier: float) -> int:
    """OpenAI's patch rule."""
    count = math.ceil(width / 32) * math.ceil(height / 32)
    if count > MAX_PATCHES:
        shrink = math.sqrt(32 * 32 * MAX_PATCHES / (width * height))
        w, h = width * shrink, height * shrink
        fit = math.floor(w / 32) / (w / 32)  # a whole number of patches across
        w, h = w * fit, h * fit
        count = min(MAX_PATCHES, math.ceil(w / 32) * math.ceil(h / 32))
    return int(count * multiplier)


def rule_for(provider: str, model: str | None) -> str | None:
    """Which rule prices ``model``'s images ("tiles", "patches", "area"), or None."""
    name = (model or "").lower()
    if provider == "anthropic" or name.startswith("claude"):
        return "area"
    if provider == "sim":
        return "tiles"
    if _longest(_PATCHES, name) is not None:
        return "patches"
    if _longest(_TILES, name) is not None:
        return "tiles"
    return None


def image_tokens(provider: str, model: str | None, image: Attachment, detail: str | None) -> int | None:
    """The image's input tokens for ``model``, or None where no rule is known (or its size is not)."""
    rule = rule_for(provider, model)
    if rule is None or image.pixels is None:
        return None
    width, height = image.pixels
    if rule == "area":
        return math.ceil(width * height / 750)
    name = (model or "").lower()
    if rule == "patches":
        return patches(width, height, _PATCHES[_longest(_PATCHES, name) or ""])
    base, per_tile = _TILES.get(_longest(_TILES, name) or "", (85, 170))
    return tiles(width, height, detail, base, per_tile)


def _longest(table: Mapping[str, Any], name: str) -> str | None:
    """The longest key ``name`` starts with (gpt-4o-mini before gpt-4o), or None."""
    found = [key for key in table if name.startswith(key)]
    return max(found, key=len) if found else None


def images_in(messages: Any) -> Iterator[tuple[Attachment, str | None]]:
    """Each image a body's messages carry, with its detail."""
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            image = part.get("image_url") if isinstance(part, dict) else None
            if isinstance(image, dict) and isinstance(image.get("url"), Attachment):
                yield image["url"], image.get("detail")
