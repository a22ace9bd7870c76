"""One endpoint's batch as it is shown, on fixed states: the table, bounded; rows streaming in; the figures line;
and the whole view that a result displays (text and HTML from one bundle)."""

from __future__ import annotations

from nbtools._engine.figures import Figures
from nbtools._engine.rows import ERROR, OK, RUNNING
from nbtools._views import report
from tests.support.states import batch, figures, row


def test_the_table_is_bounded_and_says_how_many_rows_are_left_out() -> None:
    state = batch([row(i) for i in range(30)])
    text, html = report.table_text(state, 8), report.table_html(state, 8)
    assert text.count("\n") == 1 + 8 and text.endswith("… 22 more rows in the result")
    assert html.count("<tr>") == 1 + 8 and "22 more rows in the result" in html


def test_a_running_batch_shows_rows_in_flight_first_then_the_latest_finished() -> None:
    rows = [row(i) for i in range(10)] + [row(10, RUNNING), row(11, RUNNING)]
    shown = [r.index for r in report.table_rows(batch(rows, done=False), 4)]
    assert shown == [8, 9, 10, 11]


def test_streamed_text_of_a_running_row_grows_in_its_cell() -> None:
    streaming = row(0, RUNNING)
    state = batch([streaming], done=False)
    cells = []
    streaming.begin_stream()
    for word in ("one ", "two ", "three"):
        state.row_streamed(streaming, word)
        cells.append(report.table_text(state).splitlines()[1].split(" | ")[2])
    assert cells == ["one", "one two", "one two three"]


def test_errors_and_notable_finishes_are_shown_and_counted() -> None:
    rows = [row(0, ERROR, error_kind="server"), row(1, finish_reason="length"), row(2)]
    state = batch(rows)
    s = figures(state)
    text = report.table_text(state)
    assert "error: server" in text and "ok, cut by max_tokens" in text
    line = report.summary_line(s)
    assert "1 cut off by max_tokens (finish_reason 'length')" in line and "errors by kind: server 1" in line
    assert "<td class='err'>HTTP 500: boom</td>" in report.table_html(state)


def test_the_server_limit_is_said_once_it_set_the_pace() -> None:
    s = Figures.of(batch([row(0)]))
    assert report.server_limit(s) is None
    assert "about 4 requests at a time" in str(report.server_limit(_with(s, server_capacity=4)))
    assert "turned requests away (429/503) at about 7 in flight" in str(report.server_limit(_with(s, refused_at=7)))


def test_the_view_of_a_result_gives_text_and_html_from_the_same_figures() -> None:
    state = batch([row(0, text="<b>bold</b>"), row(1, OK)])
    view = report.BatchView(state, figures(state))
    assert view.text().startswith("BatchResult: m @ 127.0.0.1:9 · concurrency 16 · 2 requests")
    html = view.html()
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "<svg" in html and "<th>state</th>" in html


def _with(s: Figures, **changes: object) -> Figures:
    from dataclasses import replace

    return replace(s, **changes)  # type: ignore[arg-type]
