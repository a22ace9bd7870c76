"""The words shown for a batch's outcomes, each written once: the summary, the tables and the views use them."""

from __future__ import annotations

from typing import NamedTuple


class Label(NamedTuple):
    short: str  # in a table cell
    long: str  # in a sentence of the summary


# The finish reasons worth pointing out: the reply is there, but not whole.
FINISH = {
    "length": Label("cut by max_tokens", "cut off by max_tokens (finish_reason 'length')"),
    "content_filter": Label("content filter", "stopped by a content filter"),
}
