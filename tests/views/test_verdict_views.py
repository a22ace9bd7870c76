"""The views of checks, verdicts and the trade-off escape what users and models wrote: model labels, prompts,
replies and the judge's reasons are untrusted text in every HTML and SVG."""

from __future__ import annotations

from nbtools._views.agreement import AgreementView
from nbtools._views.pairwise import PairwiseView
from nbtools._views.tradeoff_chart import TradeoffPoint, TradeoffView, tradeoff_svg

EVIL = "<script>alert(1)</script>"


def test_the_tradeoff_table_and_chart_escape_model_labels() -> None:
    points = [TradeoffPoint(EVIL, 0.5, 0.2, 0.4, 0.01, 0, 0), TradeoffPoint("ok", None, None, None, None, 2, 1)]
    html = TradeoffView(points, "check 'right'", True).html()
    assert EVIL not in html and "&lt;script&gt;" in html
    svg = tradeoff_svg(points, "judge score", False)
    assert svg.count("<circle") == 1  # a model with no quality or latency is in the table, not the chart
    assert EVIL not in svg


def test_a_dot_on_the_right_half_is_labelled_on_its_left_so_the_label_stays_inside() -> None:
    points = [TradeoffPoint("slow", 0.9, 1.0, 1.2, 0.4, 0, 0), TradeoffPoint("fast", 0.5, 0.1, 0.2, 0.01, 0, 1)]
    svg = tradeoff_svg(points, "q", True)
    assert "text-anchor='end' fill='#333'>slow" in svg and "text-anchor='start' fill='#333'>fast" in svg


def test_pairwise_and_agreement_views_escape_labels_prompts_replies_and_reasons() -> None:
    pairs = [{"model_a": EVIL, "model_b": "b", "a_wins": 1, "ties": 2, "b_wins": 0, "no_verdict": 0}]
    html = PairwiseView(pairs, {EVIL: 0.6, "b": 0.4}, 0.5, EVIL, None).html()
    assert EVIL not in html and "position bias 50%" in html
    html = AgreementView("judge", 0.5, 0.75, 4, 0, [(EVIL, EVIL, "True", "False", EVIL)]).html()
    assert EVIL not in html and "kappa 0.50, 75% the same, over 4 rows" in html


def test_a_running_batch_shows_each_finished_rows_checks_and_the_pass_rate_so_far() -> None:
    from nbtools._engine.figures import Figures
    from nbtools._engine.rows import RUNNING
    from nbtools._views import report
    from tests.support.states import batch, row

    rows = [row(0), row(1), row(2, RUNNING)]
    state = batch(rows, done=False, expected=[7, 8, 9], checks={"right": "number"})
    for finished, text in ((rows[0], "It is 7."), (rows[1], "It is 9.")):
        finished.text, finished.expected = text, state.options.expected[finished.index]
        state.grade(finished)  # as row_finished() does when a reply arrives
    html = report.table_html(state)
    assert "<th>checks</th>" in html and "right ✓" in html and "right ✗" in html
    figures = Figures.of(state)
    assert "checks: right 50% of 2" in report.summary_line(figures)
    assert "checks: right 50% of 2" in report.summary_html(state, figures)
