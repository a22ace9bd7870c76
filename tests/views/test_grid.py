"""A several-model batch as it is shown, on fixed states: the grid (prompts by models) with untrusted text escaped,
a figures line per model, the grid filling in as replies arrive, and the whole view (text and HTML)."""

from __future__ import annotations

from nbtools._engine.figures import Figures
from nbtools._engine.rows import ERROR, PENDING, RUNNING
from nbtools._views import grid
from tests.support.states import row, several

HOSTILE = "<script>alert(1)</script> & more"


def _figures(state) -> dict[str, Figures]:  # type: ignore[no-untyped-def]
    return {label: Figures.of(part) for label, part in state.by_model.items()}


def test_the_grid_shows_prompts_by_models_and_escapes_replies() -> None:
    state = several({"small": [row(0, prompt=HOSTILE), row(1)], "big": [row(0, prompt=HOSTILE), row(1, ERROR,
                                                                                                     error_kind="server")]})
    view = grid.SeveralView(state, _figures(state))
    html = view.html()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert html.count("<tr>") >= 3 and grid.colour(0) in html and grid.colour(1) in html  # in the timeline too
    text = view.text()
    rows = grid.grid_text(state).splitlines()
    assert rows[0] == "# | prompt | small | big" and rows[2] == "1 | p1 | p1 | error: server"
    figures = grid.models_text(state, _figures(state)).splitlines()
    assert len(figures) == 2 and figures[0].startswith("small: 2/2 done; p50 0.50 s") and "1 errors" in figures[1]
    assert text.startswith("MultiModelResult: 2 models · 2 prompts each · 4 requests")


def test_the_grid_fills_in_as_replies_arrive() -> None:
    small = [row(0), row(1, RUNNING), row(2, PENDING)]
    big = [row(0, RUNNING), row(1, PENDING), row(2, PENDING)]
    state = several({"small": small, "big": big}, done=False)
    before = grid.grid_text(state).splitlines()[1:]
    assert before == ["0 | p0 | p0 | …", "1 | p1 | … | pending", "2 | p2 | pending | pending"]
    streaming = big[0]
    streaming.begin_stream()
    streaming.add_text("p0 so far", 0.7)
    assert grid.grid_text(state).splitlines()[1] == "0 | p0 | p0 | p0 so far"  # its text while it streams


def test_a_running_batch_shows_the_prompts_in_flight_when_not_all_fit() -> None:
    rows = {"a": [row(i) for i in range(30)], "b": [row(i) for i in range(30)]}
    rows["a"][25] = row(25, RUNNING)
    state = several(rows, done=False)
    shown = [line.split(" | ")[0] for line in grid.grid_text(state, limit=3).splitlines()[1:]]
    assert "25" in shown and len(shown) == 3
