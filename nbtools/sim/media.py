"""Images and PDFs in a request: checked as the real APIs check them, and read for a few cheap facts.

Chat takes ``text``, ``image_url`` and ``file`` parts; the Responses API ``input_text``, ``input_image`` and
``input_file``. A part of the other API's kind is refused as OpenAI refuses it ("Invalid value: 'input_image'.
Supported values are: 'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'.", param
``messages[i].content[j].type``, code ``invalid_value``, as quoted in several public projects). A ``data:`` URI whose
bytes are not the image its media type says is refused with OpenAI's "You uploaded an unsupported image" body
(code ``invalid_image_format``, quoted in STranslate/STranslate issue 277); an Anthropic image block's with
"messages.0.content.1.image.source.base64.data: The image was specified using the image/jpeg media type, but does
not appear to be a valid jpeg image" (as quoted in public code handling its 400s). What is read: the size in pixels (from
the header), the dominant colour of a small PNG, a PDF's page count; images are priced by OpenAI's tile rule.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from nbtools._base.attachments import IMAGE_TYPES, PDF, pdf_pages, pixel_size, sniff
from nbtools._engine.image_tokens import tiles

CHAT_PARTS = ("text", "image_url", "input_audio", "refusal", "audio", "file")
RESPONSES_PARTS = ("input_text", "input_image", "input_file", "output_text", "refusal")
ANTHROPIC_BLOCKS = ("text", "image", "document", "tool_use", "tool_result")
_ALLOWED = {"chat": CHAT_PARTS, "responses": RESPONSES_PARTS, "anthropic": ANTHROPIC_BLOCKS}
UNSUPPORTED_IMAGE = ("You uploaded an unsupported image. Please make sure your image has of one the following "
                     "formats: ['png', 'jpeg', 'gif', 'webp'].")
_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 60, 220), "yellow": (240, 220, 40),
            "orange": (245, 140, 20), "purple": (140, 40, 170), "white": (245, 245, 245), "black": (10, 10, 10),
            "grey": (128, 128, 128)}
_MAX_DECODED = 256 * 256  # pixels: a larger PNG is not decoded for its colour


class PartRefused(ValueError):
    """A content part the real API refuses: its message, param and code."""

    def __init__(self, message: str, param: str | None, code: str) -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(frozen=True)
class Seen:
    """What the simulator read off one attachment."""

    words: str  # e.g. "image 40x30 px mostly red", "PDF of 3 pages"
    tokens: int


def read_content(content: list[Any], where: str, api: str) -> tuple[str, list[Seen]]:
    """A message's parts: their text, and what each image or file shows; PartRefused as the API refuses one."""
    allowed = _ALLOWED[api]
    texts: list[str] = []
    seen: list[Seen] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            names = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
            raise PartRefused(f"Invalid value: '{kind}'. Supported values are: {names}.", f"{where}[{j}].type",
                              "invalid_value")
        if kind in ("text", "input_text", "output_text"):
            texts.append(str(part.get("text") or ""))
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if kind == "image_url" and isinstance(image, dict) else image
            seen.append(_image(str(url), part.get("detail") or (image.get("detail") if isinstance(image, dict) else None),
                               f"{where}[{j}]"))
        elif kind in ("file", "input_file"):
            file = part.get("file") if kind == "file" else part
            seen.append(_pdf(str((file or {}).get("file_data")), f"{where}[{j}]"))
        elif kind in ("image", "document"):
            seen.append(_block(kind, part.get("source"), f"{where}.{j}".replace("[", ".").replace("]", "")))
    return " ".join(t for t in texts if t), seen


def _block(kind: str, source: Any, where: str) -> Seen:
    """An Anthropic image or document block, as a data: URI (or URL) read like the others."""
    if not isinstance(source, dict):
        raise PartRefused(f"{where}.{kind}.source: Field required", None, "invalid_request_error")
    if source.get("type") == "url":
        return _image(str(source.get("url")), None, where)
    media_type = str(source.get("media_type"))
    uri = f"data:{media_type};base64,{source.get('data')}"
    if kind == "document":
        return _pdf(uri, where)
    try:
        return _image(uri, None, where)
    except PartRefused:
        name = media_type.rpartition("/")[2]
        raise PartRefused(f"{where}.image.source.base64.data: The image was specified using the {media_type} media "
                          f"type, but does not appear to be a valid {name} image", None, "invalid_request_error") from None


def _decoded(uri: str, param: str) -> tuple[str, bytes]:
    head, comma, data = uri.partition(",")
    if not (uri.startswith("data:") and comma and head.endswith(";base64")):
        raise PartRefused(UNSUPPORTED_IMAGE, None, "invalid_image_format")
    try:
        return head[5:-7], base64.b64decode(data, validate=True)
    except binascii.Error:
        raise PartRefused(UNSUPPORTED_IMAGE, None, "invalid_image_format") from None


def _image(url: str, detail: Any, param: str) -> Seen:
    if url.startswith(("http://", "https://")):
        return Seen("image at a URL", 85)  # not fetched: priced as a low-detail image
    media_type, data = _decoded(url, param)
    if media_type not in IMAGE_TYPES or sniff(data[:16]) != media_type:
        raise PartRefused(UNSUPPORTED_IMAGE, None, "invalid_image_format")
    size = pixel_size(data, media_type)
    if size is None:
        raise PartRefused(UNSUPPORTED_IMAGE, None, "invalid_image_format")
    colour = dominant_colour(data) if media_type == "image/png" else None
    words = f"image {size[0]}x{size[1]} px" + (f" mostly {colour}" if colour else "")
    return Seen(words, tiles(size[0], size[1], detail if isinstance(detail, str) else None))


def _pdf(uri: str, param: str) -> Seen:
    media_type, data = _decoded(uri, param)
    if media_type != PDF or sniff(data[:16]) != PDF:
        raise PartRefused(f"Invalid file data: '{param}.file.file_data'. Expected a base64-encoded data URL with an "
                          "application/pdf MIME type.", f"{param}.file.file_data", "invalid_value")
    pages = pdf_pages(data)
    return Seen(f"PDF of {pages} page{'s' if pages != 1 else ''}", 85 * max(pages, 1))


def dominant_colour(png: bytes) -> str | None:
    """The named colour nearest a small 8-bit RGB(A) PNG's mean colour, or None for others."""
    width, height, depth, colour_type, interlace = struct.unpack(">IIBBxxB", png[16:29])
    if depth != 8 or colour_type not in (2, 6) or interlace or width * height > _MAX_DECODED:
        return None
    channels = 3 if colour_type == 2 else 4
    try:
        rows = _unfiltered(_idat(png), width * channels, height, channels)
    except (zlib.error, IndexError):  # pixels cut short or missing: its colour is not read
        return None
    totals = [0, 0, 0]
    for row in rows:
        for c in range(3):
            totals[c] += sum(row[c::channels])
    mean = [t / (width * height) for t in totals]
    return min(_COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(_COLOURS[name], mean, strict=True)))


def _idat(png: bytes) -> bytes:
    out, i = [], 8
    while i + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[i : i + 8])
        if kind == b"IDAT":
            out.append(png[i + 8 : i + 8 + length])
        i += 12 + length
    return zlib.decompress(b"".join(out))


def _unfiltered(raw: bytes, stride: int, height: int, bpp: int) -> list[bytes]:
    rows: list[bytes] = []
    prior = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up, corner = prior[x], prior[x - bpp] if x >= bpp else 0
            line[x] = (line[x] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(bytes(line))
        prior = line
    return rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    if kind == 4:  # Paeth
        p = left + up - corner
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
        return left if pa <= pb and pa <= pc else up if pb <= pc else corner
    return 0
