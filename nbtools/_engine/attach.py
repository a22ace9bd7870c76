"""``images=`` and ``files=`` put onto the prompts, checked against what the endpoint takes, before any request.

Each prompt becomes a message list whose last user message holds the text and a content part per attachment
(nbtools._base.attachments.parts); wire.py writes each API's own part when the request is sent. Limits, as each
provider documents them:

- OpenAI: at most 500 images and 50 MB of images per request (platform.openai.com/docs/guides/images-vision,
  "Image input requirements"); PDFs through the ``file`` part, at most 32 MB and 100 pages per request
  (platform.openai.com/docs/guides/pdf-files).
- Anthropic: at most 100 images per request, 5 MB each (docs.claude.com/en/docs/build-with-claude/vision);
  PDFs as document blocks, 32 MB and 100 pages (docs.claude.com/en/docs/build-with-claude/pdf-support), taken
  on its native Messages API, so here through its Batch API (``via="batch"``).
- Gemini's OpenAI-compatible endpoint: 20 MB per request of inline data (ai.google.dev/gemini-api/docs/vision);
  PNG, JPEG, WEBP, HEIC and HEIF images, no GIF (ai.google.dev/gemini-api/docs/image-understanding, "Supported
  image formats").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbtools._base import attachments as att
from nbtools._base.attachments import Attachment, BadInput
from nbtools._base.errors import ConfigError
from nbtools._base.options import BatchOptions
from nbtools._base.prompts import Prompt
from nbtools._engine.endpoints import Endpoint
from nbtools._engine.fetch_urls import fetch_all, fetched_here

MB = 2**20


@dataclass(frozen=True)
class Limits:
    """What one request of a provider may carry (None: not documented, so not checked)."""

    images: int | None = None  # images per request
    image_bytes: int | None = None  # bytes per image
    request_bytes: int | None = None  # bytes of all attachments of a request
    pdf_pages: int | None = None
    image_types: tuple[str, ...] | None = None  # the media types its images may have, of those nbtools reads


LIMITS: dict[str, Limits] = {
    "openai": Limits(images=500, request_bytes=50 * MB, pdf_pages=100),
    "sim": Limits(images=500, request_bytes=50 * MB, pdf_pages=100),
    "anthropic": Limits(images=100, image_bytes=5 * MB, request_bytes=32 * MB, pdf_pages=100),
    "gemini": Limits(request_bytes=20 * MB, image_types=("image/png", "image/jpeg", "image/webp")),
}
# Who takes PDFs, and how: the chat ``file`` part / the Responses API's input_file; Anthropic's document blocks.
FILES_ONLINE = ("openai", "sim")
FILES_VIA_BATCH = ("anthropic",)


def attach(items: list[Prompt], options: BatchOptions, endpoint: Endpoint) -> tuple[list[Prompt], dict[int, str]]:
    """The prompts with their images and files, and for ``on_bad_input="skip"`` the prompts that cannot be sent
    (index -> why). Anything wrong with the whole batch, or any row with ``on_bad_input="error"``, is a ConfigError."""
    images, files = options.images, options.files
    if images is None and files is None:
        return items, {}
    for name, values in (("images", images), ("files", files)):
        if values is not None and len(values) != len(items):
            raise ConfigError(f"{name}= has {len(values)} entries for {len(items)} prompts: give one per prompt "
                              f"(None for a prompt without), in the prompts' order")
    if files is not None and any(v is not None for v in files):
        _check_takes_files(endpoint, options.via)
    limits = LIMITS.get("sim" if endpoint.simulated else endpoint.provider, Limits())
    got = _fetched_urls(images, endpoint, options)
    bad: dict[int, str] = {}
    out: list[Prompt] = []
    for i, prompt in enumerate(items):
        try:
            found = _row(images[i] if images else None, files[i] if files else None, limits, endpoint, got)
        except BadInput as exc:
            if options.on_bad_input == "error":
                raise BadInput(f"prompt {i}: {exc} (on_bad_input='skip' sends the other rows)") from None
            bad[i] = str(exc)
            found = []
        out.append(with_parts(prompt, found, options.image_detail) if found else prompt)
    return out, bad


def _check_takes_files(endpoint: Endpoint, via: str) -> None:
    provider = "sim" if endpoint.simulated else endpoint.provider
    if provider in (*FILES_ONLINE, "custom") or (provider in FILES_VIA_BATCH and via == "batch"):
        return  # "custom": a base_url of the user's own, sent chat's file part as OpenAI takes it
    raise ConfigError(f"files= (PDFs) is not taken by {provider!r} here: use provider "
                      f"{', '.join(map(repr, FILES_ONLINE))}, or 'anthropic' with via='batch'; or send pages as images=")


def _fetched_urls(images: Any, endpoint: Endpoint, options: BatchOptions) -> dict[str, bytes | str]:
    """The image URLs' bytes (or why not), where the provider does not fetch URLs itself; else nothing."""
    if images is None or endpoint.simulated or not fetched_here(endpoint.provider, options.via):
        return {}
    return fetch_all((v for row in images for v in att.entries(row) if att.is_url(v)), options.timeout)


def _from_url(a: Attachment, got: dict[str, bytes | str], provider: str) -> Attachment:
    data = got.get(a.url or "")
    if data is None:
        return a
    if isinstance(data, str):
        raise BadInput(f"image {a.url} could not be fetched ({data}): {provider}'s endpoint takes no image URLs, so "
                       "nbtools fetches it first; check the URL, or pass the image's bytes or path")
    return att.fetched(a, data)


def _row(images: Any, files: Any, limits: Limits, endpoint: Endpoint,
         got: dict[str, bytes | str]) -> list[Attachment]:
    found = [_from_url(att.load(v, att.IMAGE), got, endpoint.provider) for v in att.entries(images)]
    found += [att.load(v, att.FILE) for v in att.entries(files)]
    where = f"{endpoint.provider}'s"
    pictures = [a for a in found if a.kind == att.IMAGE]
    if limits.images is not None and len(pictures) > limits.images:
        raise BadInput(f"{len(pictures)} images, more than the {limits.images} {where} API takes in one request")
    for a in found:
        _check(a, limits, where)
    total = sum(a.size for a in found)
    if limits.request_bytes is not None and total > limits.request_bytes:
        raise BadInput(f"{total / MB:.1f} MB of images and files, over the {limits.request_bytes // MB} MB {where} "
                       "API takes in one request: send fewer or smaller")
    return found


def _check(a: Attachment, limits: Limits, where: str) -> None:
    """BadInput if ``a`` is of a kind, a size or a length that the provider does not take."""
    taken = limits.image_types
    if taken is not None and a.kind == att.IMAGE and a.url is None and a.media_type not in taken:
        raise BadInput(f"image {a.name!r} is {a.media_type}, which {where} API does not take: convert it to one of "
                       f"{', '.join(t.removeprefix('image/').upper() for t in taken)}")
    if limits.image_bytes is not None and a.kind == att.IMAGE and a.size > limits.image_bytes:
        raise BadInput(f"image {a.name!r} is {a.size / MB:.1f} MB, over the {limits.image_bytes // MB} MB "
                       f"{where} API takes: make it smaller")
    if a.kind == att.FILE and limits.pdf_pages is not None:
        pages = att.pdf_pages(a.data())
        if pages > limits.pdf_pages:
            raise BadInput(f"file {a.name!r} has {pages} pages, over the {limits.pdf_pages} {where} API takes")


def with_parts(prompt: Prompt, found: Sequence[Attachment], detail: str | None) -> Prompt:
    """``prompt`` with ``found`` attached to its last user message."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": att.parts(prompt, found, detail)}]
    messages = [dict(m) for m in prompt]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        messages.append({"role": "user", "content": att.parts(None, found, detail)})
        return messages
    content = messages[last].get("content")
    text_parts = content if isinstance(content, list) else att.parts(str(content), (), None)
    messages[last]["content"] = [*text_parts, *att.parts(None, found, detail)]
    return messages
