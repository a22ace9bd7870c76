"""Images and PDFs attached to a row, from what users have: a path, an http(s) URL, raw bytes or a PIL image.

Each is read once when the batch is built: its media type from its first bytes (never from the file name), its size
in pixels from its header (nothing is decoded), and a sha256 of its bytes, which names it in the reply cache's key
and in exports. The bytes themselves are held only for raw bytes and PIL images; a path is read again when its
request is encoded (``data``), so a batch of a thousand photos does not hold a thousand files in memory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtools._base.errors import ConfigError

IMAGE, FILE = "image", "file"
PDF = "application/pdf"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # what every vision API takes


class BadInput(ConfigError):
    """An image or file that cannot be sent (missing, of another kind, too big): one row's trouble."""


def sniff(head: bytes) -> str | None:
    """The media type the bytes begin with (magic numbers), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def pixel_size(data: bytes, media_type: str) -> tuple[int, int] | None:
    """(width, height) from the image's header alone, or None where the header does not say."""
    try:
        if media_type == "image/png":
            return struct.unpack(">II", data[16:24])  # IHDR, the first chunk
        if media_type == "image/gif":
            return struct.unpack("<HH", data[6:10])  # the logical screen
        if media_type == "image/webp":
            return _webp_size(data)
        if media_type == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit sizes minus one
        w = int.from_bytes(data[24:27], "little") + 1
        return w, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame's start code
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one, packed
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame header's size, found by walking the segments (only their lengths are read)."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def pdf_pages(data: bytes) -> int:
    """Pages in a PDF, counted from its page objects (cheap, and right for ordinary files)."""
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages") + data.count(b"/Type/Page") - data.count(
        b"/Type/Pages")


@dataclass(frozen=True, eq=False)
class Attachment:
    """One image or PDF of a row: where it came from, what it is, and a hash of its bytes (None for a URL)."""

    kind: str  # IMAGE or FILE
    name: str  # the path, the URL, or "sha256:<first 12 hex>" for bytes: how exports and views name it
    media_type: str | None  # sniffed from the bytes; None for a URL (not read)
    digest: str | None  # sha256 of the bytes; None for a URL
    size: int  # bytes; 0 for a URL
    pixels: tuple[int, int] | None  # (width, height) from the header; None for a URL or a PDF
    url: str | None = None
    path: str | None = None
    _data: bytes | None = None  # held for raw bytes and PIL images; a path is read again when sent

    @property
    def filename(self) -> str:
        return os.path.basename(self.path) if self.path else f"{self.kind}-{(self.digest or '')[:12]}.pdf"

    def data(self) -> bytes:
        if self._data is not None:
            return self._data
        if self.path is None:
            raise BadInput(f"{self.name} is a URL: it has no bytes here")
        return Path(self.path).read_bytes()

    def base64(self) -> str:
        return base64.b64encode(self.data()).decode("ascii")

    def data_uri(self) -> str:
        """What the request carries: the URL as given, else a ``data:`` URI of the bytes."""
        return self.url if self.url is not None else f"data:{self.media_type};base64,{self.base64()}"

    def __str__(self) -> str:  # what the reply cache's key holds for it: the hash, never the bytes
        return f"{self.kind} {self.url}" if self.url is not None else f"{self.kind} {self.media_type} sha256:{self.digest}"

    def __repr__(self) -> str:
        return f"Attachment({self.name!r})"


def load(value: Any, kind: str) -> Attachment:
    """``value`` (a path, an http(s) URL, bytes or a PIL image) as an Attachment of ``kind``; BadInput if it is
    not one."""
    if isinstance(value, Attachment):
        return value
    if is_url(value):
        return Attachment(kind, value, None, None, 0, None, url=value)
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise BadInput(f"{kind} {path!r} does not exist: check the path (relative to {os.getcwd()})") from None
        except OSError as exc:
            raise BadInput(f"{kind} {path!r} cannot be read: {exc.strerror}") from None
        return _checked(kind, data, path, path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return _checked(kind, data, None, f"sha256:{hashlib.sha256(data).hexdigest()[:12]}", held=True)
    if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image: sent as the PNG it saves
        out = io.BytesIO()
        value.save(out, format="PNG")
        data = out.getvalue()
        return _checked(kind, data, None, f"sha256:{hashlib.sha256(data).hexdigest()[:12]}", held=True)
    raise BadInput(f"{kind} {_short(value)} is {type(value).__name__}: give a path, an http(s) URL, bytes or a "
                   "PIL image")


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def fetched(url: Attachment, data: bytes) -> Attachment:
    """A URL's attachment made of the bytes fetched from it: sent as a ``data:`` URI, keyed on their hash, still
    named by the URL."""
    return _checked(url.kind, data, None, url.name, held=True)


def _checked(kind: str, data: bytes, path: str | None, name: str, *, held: bool = False) -> Attachment:
    media_type = sniff(data[:16])
    wanted = IMAGE_TYPES if kind == IMAGE else (PDF,)
    if media_type is None or media_type not in wanted:
        what = "a PNG, JPEG, GIF or WEBP image" if kind == IMAGE else "a PDF"
        found = f"its bytes are {media_type}" if media_type else "its first bytes are none of these"
        fix = ": pass PDFs with files=" if media_type == PDF else ""
        raise BadInput(f"{kind} {name!r} is not {what} ({found}){fix}")
    pixels = pixel_size(data, media_type) if kind == IMAGE else None
    return Attachment(kind, name, media_type, hashlib.sha256(data).hexdigest(), len(data), pixels, path=path,
                      _data=data if held else None)


def entries(value: Any) -> Iterator[Any]:
    """One row's entry as its items: None for none, a list for several, else one."""
    if value is None:
        return iter(())
    if isinstance(value, (list, tuple)):
        return iter(value)
    return iter((value,))


def parts(text: str | None, attachments: Sequence[Attachment], detail: str | None) -> list[dict[str, Any]]:
    """A user message's content: the text, then each attachment as a chat content part holding the Attachment
    itself (wire.py turns it into each API's own part, and its bytes into base64, only when it is sent)."""
    out: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for a in attachments:
        if a.kind == IMAGE:
            image: dict[str, Any] = {"url": a}
            if detail is not None:
                image["detail"] = detail
            out.append({"type": "image_url", "image_url": image})
        else:
            out.append({"type": "file", "file": {"filename": a.filename, "file_data": a}})
    return out


def attachments_of(prompt: Any) -> list[Attachment]:
    """The attachments a prompt (a message list) carries, in order."""
    if isinstance(prompt, str):
        return []
    found: list[Attachment] = []
    for message in prompt:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping):
                    found.extend(v for v in _values(part) if isinstance(v, Attachment))
    return found


def _values(part: Mapping[str, Any]) -> Iterator[Any]:
    for value in part.values():
        if isinstance(value, Mapping):
            yield from value.values()
        else:
            yield value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
