"""Several models in JupyterLab, in headless Chromium: the grid of prompts by models fills as replies arrive,
with one line of figures per model and the timeline in one colour per model."""

from __future__ import annotations

from typing import Any

import pytest

from nbtools._views.grid import PALETTE
from tests.support.error_server import HeldEcho

pytestmark = pytest.mark.timeout(150)

# The grid's cells, by header: [{"#": "0", "prompt": "one", "sim-small": "...", "sim-large": "..."}, ...]
GRID_JS = """cell => {
  const table = cell.querySelector('.nbt table.nbt-grid');
  if (!table) return null;
  const trs = [...table.querySelectorAll('tr')];
  const heads = [...trs[0].querySelectorAll('th')].map(x => x.textContent.trim());
  return trs.slice(1).map(tr => Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.textContent])));
}"""
FIGURES_JS = """cell => [...cell.querySelectorAll('.nbt table.nbt-models tr')].slice(1)
  .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim()))"""


PROMPTS = ["one", "two", "three", "four"]  # the replies to "four" wait until the test has seen the grid part-way
# While it runs: some cells hold a reply, others still wait for theirs.
PARTIAL_JS = f"""cell => {{
  const rows = ({GRID_JS})(cell);
  if (!rows || rows.length < 4) return null;
  const cells = rows.flatMap(r => [[r.prompt, r['sim-small']], [r.prompt, r['sim-large']]]);
  const answered = cells.filter(([prompt, reply]) => prompt === reply).length;
  return answered > 0 && answered < cells.length ? rows : null;
}}"""


def unanswered(rows: list[dict[str, str]], prompt: str) -> bool:
    """Whether neither model's cell of ``prompt`` shows its reply."""
    return all(r["sim-small"] != prompt and r["sim-large"] != prompt for r in rows if r["prompt"] == prompt)


def fill_grid(make_page: Any, server: HeldEcho) -> tuple[Any, list[dict[str, str]], list[dict[str, str]]]:
    """Run a two-model batch in a fresh notebook page: (the page, the grid while it ran, the grid at the end).
    Screenshots of both; any frontend whose page has run/wait_js/screenshot/output/wait_executed."""
    nb = make_page(["%load_ext nbtools",
                    f"%%llm_batch --base-url {server.base_url} -m sim-small,sim-large -c 1\n" + "\n".join(PROMPTS)])
    nb.run(0)
    nb.run(1, wait=False)
    partial = nb.wait_js(1, PARTIAL_JS, timeout=30)
    nb.screenshot("grid-filling", show=nb.output(1))
    assert unanswered(partial, server.held), partial  # its replies are held: not shown before they come
    server.release()
    nb.wait_executed(1)
    final = nb.wait_js(1, f"""cell => {{
      const rows = ({GRID_JS})(cell);
      return rows && rows.every(r => r['sim-small'] === r.prompt && r['sim-large'] === r.prompt) ? rows : null;
    }}""")
    nb.screenshot("grid-done", show=nb.output(1))
    return nb, partial, final


def test_the_grid_fills_as_replies_arrive(notebook, held_echo: HeldEcho) -> None:
    prompts = PROMPTS
    nb, partial, final = fill_grid(notebook, held_echo)
    assert [row["prompt"] for row in final] == prompts
    assert any(row["sim-small"] != row["prompt"] or row["sim-large"] != row["prompt"] for row in partial), partial
    figures = nb.wait_js(1, FIGURES_JS)
    assert [row[0] for row in figures] == ["sim-small", "sim-large"], figures
    assert all(row[1] == "4/4" for row in figures), figures
    svg = nb.output(1).locator("svg[aria-label='timeline by model']")
    assert svg.count() == 1
    fills = set(svg.locator("rect").evaluate_all("rects => rects.map(r => r.getAttribute('fill'))"))
    assert {PALETTE[0], PALETTE[1]} <= fills, fills
    assert not nb.errors, nb.errors
