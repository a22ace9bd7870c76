"""The documentation site (docs/) builds offline with no warning, and its API page documents exactly ``nbtools.__all__``.

The build is scripts/docs.py's command (Sphinx, warnings as errors, every reference checked), into a temporary
folder; a broken link, a reference to nothing or a docstring that does not parse fails it.
"""

from __future__ import annotations

import html as html_module
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nbtools

ROOT = Path(__file__).resolve().parent.parent
API_PAGE = ROOT / "docs" / "api.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("docs_script", ROOT / "scripts" / "docs.py")
assert _spec is not None and _spec.loader is not None
docs_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_script)


def _build(out: Path, source: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = docs_script.sphinx_command(sys.executable, out, *([source] if source else []))
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("docs")
    return _build(out), out / "html"


@pytest.mark.timeout(300)
def test_the_site_builds_with_no_warning(site) -> None:
    build, html = site
    assert build.returncode == 0, build.stdout + build.stderr
    assert "WARNING" not in build.stderr and "ERROR" not in build.stderr, build.stderr
    assert (html / "index.html").is_file()


@pytest.mark.timeout(300)
def test_every_notebook_is_a_page_with_its_saved_outputs(site) -> None:
    build, html = site
    assert build.returncode == 0, build.stderr
    assert len(NOTEBOOKS) == 9
    for notebook in NOTEBOOKS:
        page = html_module.unescape(re.sub(r"<[^>]+>", "", (html / "notebooks" / f"{notebook.stem}.html").read_text()))
        printed = [line for cell in json.loads(notebook.read_text())["cells"] for output in cell.get("outputs", [])
                   if output["output_type"] == "stream" for line in "".join(output["text"]).splitlines() if line.strip()]
        assert printed and printed[0] in page, notebook.name  # the saved outputs, as they are (the build runs nothing)


def _documented(page: str) -> list[str]:
    return re.findall(r"^\.\. auto(?:function|class|exception|module):: nbtools\.(\w+)\s*$", page, re.MULTILINE)


def test_the_api_page_documents_every_public_name_and_no_other() -> None:
    documented = _documented(API_PAGE.read_text())
    assert sorted(documented) == sorted(set(documented)), "a name is documented twice"
    assert set(documented) == set(nbtools.__all__), set(documented) ^ set(nbtools.__all__)


def test_the_api_check_sees_a_missing_and_an_extra_name() -> None:
    page = ".. autofunction:: nbtools.batch\n.. autoclass:: nbtools.BatchResult\n   :members:\n.. autofunction:: nbtools.other\n"
    assert _documented(page) == ["batch", "BatchResult", "other"]


@pytest.mark.timeout(300)
def test_the_built_api_page_has_an_entry_for_every_public_name(site) -> None:
    build, html = site
    assert build.returncode == 0, build.stderr
    page = (html / "api.html").read_text()
    missing = [name for name in nbtools.__all__
               if f'id="nbtools.{name}"' not in page and f'id="module-nbtools.{name}"' not in page]
    assert missing == []
    assert "<code class=\"docutils literal notranslate\"><span class=\"pre\">concurrency=16</span></code>" in page


@pytest.mark.timeout(120)
def test_a_broken_link_or_reference_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "index.md").write_text(
        "# Broken\n\nSee [the magic](magic.md) and {py:func}`nbtools.no_such_function`.\n")
    build = _build(tmp_path / "out", source)
    assert build.returncode != 0
    assert "magic.md" in build.stderr and "nbtools.no_such_function" in build.stderr, build.stderr
