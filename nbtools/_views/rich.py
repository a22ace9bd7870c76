"""One way into rich output: every result type renders itself through its view, once per display.

IPython asks ``_repr_mimebundle_`` for the whole bundle (text and HTML) in one call, so a result's view is built
once (its figures computed once) and gives both; ``repr()`` asks the same view for its text. A result type names
its view in ``_view()``; the views take engine state and small protocols, never the types users get back.
"""

from __future__ import annotations

from typing import Any, Protocol


class View(Protocol):
    """What a result looks like: as text (terminals, static viewers) and as HTML (notebooks)."""

    def text(self) -> str: ...
    def html(self) -> str: ...


class Shown:
    """Gives a result type its rich output: ``_repr_mimebundle_`` and ``repr()``, both from ``_view()``."""

    __slots__ = ()

    def _view(self) -> View:
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        view = self._view()
        return {"text/plain": view.text(), "text/html": view.html()}

    def __repr__(self) -> str:
        return self._view().text()
