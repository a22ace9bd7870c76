"""Sphinx settings for the nbtools documentation site: ``python3 scripts/docs.py`` builds it into docs/_build/html.

Everything comes from this checkout: no intersphinx, no download at build time. The teaching notebooks in
``notebooks/`` are rendered from their saved outputs (``nb_execution_mode = "off"``), never re-run.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # autodoc documents the nbtools of this checkout

import nbtools  # noqa: E402

project = "nbtools"
author = "the nbtools authors"
copyright = "the nbtools authors"
version = release = nbtools.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc"]  # myst_nb brings myst_parser: every page is MyST Markdown
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
nitpicky = True  # a reference that points nowhere is a warning, and the build treats warnings as errors

html_theme = "furo"
html_title = "nbtools"
html_static_path = ["_static"]
highlight_language = "text"  # a fence without a language (a %%llm_batch cell, output) is not Python

myst_heading_anchors = 3  # [text](page.md#a-heading) links
nb_execution_mode = "off"  # the notebooks' saved outputs, as nbval checked them

autodoc_member_order = "bysource"
# Types from outside nbtools: with no intersphinx (nothing is downloaded) they are shown as text, not linked.
nitpick_ignore_regex = [("py:class", r"(collections\.abc|typing|os|pathlib|asyncio|pandas|pydantic)\..+")]
# Results that nbtools hands back and users never build: their constructor's signature would only mislead.
RETURNED = {"BatchResult", "RequestResult", "MultiModelResult", "ModelResult", "Summary", "Comparison", "SweepResult",
            "DryRun", "DryRuns"}


# -- the teaching notebooks --------------------------------------------------------------------------
def copy_notebooks() -> None:
    """Copy notebooks/*.ipynb into docs/notebooks/ (git-ignored), so Sphinx reads them as pages of its own.

    A notebook is rewritten only when it changed, so an incremental build re-reads only that one.
    """
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    sources = {path.name: path for path in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    for stale in target.glob("*.ipynb"):
        if stale.name not in sources:
            stale.unlink()
    for name, source in sources.items():
        copy, data = target / name, source.read_bytes()
        if not copy.exists() or copy.read_bytes() != data:
            partial = copy.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(data)
            os.replace(partial, copy)  # whole or not at all, should two builds run at once


copy_notebooks()


# -- the benchmarks' write-ups ------------------------------------------------------------------------
# docs/benchmarks/*.md include benchmarks/*.md as they are; a link between two of those files goes to its page here.
BENCHMARK_PAGES = {"README.md": "throughput.md", "DISPLAY.md": "display.md", "ADAPTIVE.md": "adaptive.md",
                   "FAILURES.md": "failures.md"}


def benchmark_links(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    if (DOCS / relative_path).resolve().parent == ROOT / "benchmarks":
        for name, page in BENCHMARK_PAGES.items():
            content[0] = content[0].replace(f"]({name})", f"]({page})")


# -- the API page -------------------------------------------------------------------------------------
def hide_constructor(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None,
                     return_annotation: str | None) -> tuple[str, None] | None:
    """``class nbtools.Summary``, not its dataclass constructor's twenty fields."""
    if what == "class" and name.removeprefix("nbtools.") in RETURNED:
        return "", None
    return None


OPTIONS_HEADER = "Options (the same names in"
OPTION_LINE = re.compile(r"^    (\w+) = (.*?): (.*)$")


def options_as_a_list(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """``batch``, ``abatch`` and ``start`` end with their options, one ``name = default: help`` line each,
    indented under a header (readable in ``help()``): here a list, with the names, defaults and `code` as code."""
    if not any(line.startswith(OPTIONS_HEADER) for line in lines):
        return
    start = next(i for i, line in enumerate(lines) if line.startswith(OPTIONS_HEADER))
    items = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        found = OPTION_LINE.match(line)
        if found is None:  # the docstrings' format changed: change this hook with it
            raise ValueError(f"{name}: an option line that is not 'name = default: help': {line!r}")
        option, default, meaning = found.groups()
        items.append(f"- ``{option}={default}``: " + re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", meaning))
    lines[start + 1:start + 1 + len(items)] = ["", *items]


def private_type_as_text(app: Sphinx, env: Any, node: addnodes.pending_xref, contnode: nodes.Element) -> nodes.Element | None:
    """In a signature, a type that nbtools does not export (``SweepPoint``, ``DryRunRow``) is shown as text.

    Only there: a reference written on a page, or to a name of ``nbtools.__all__``, still has to resolve.
    """
    target = node.get("reftarget", "")
    in_signature = any(isinstance(parent, addnodes.desc_signature) for parent in _parents(node))
    if (node.get("refdomain") == "py" and target.startswith("nbtools.") and in_signature
            and target.rsplit(".", 1)[-1] not in nbtools.__all__):
        return contnode
    return None


def _parents(node: nodes.Node) -> Iterator[nodes.Element]:
    while node.parent is not None:
        node = node.parent
        yield node


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", hide_constructor)
    app.connect("autodoc-process-docstring", options_as_a_list)
    app.connect("missing-reference", private_type_as_text)
    app.connect("include-read", benchmark_links)
