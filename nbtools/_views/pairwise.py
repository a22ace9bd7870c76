"""Pairwise verdicts shown: wins, ties and losses per pair of models, each model's win rate, the judge's position
bias, and the judge's own cost. Labels are the user's and the judge's reasons are not shown here, but every piece of
text still goes through ``escape``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nbtools._engine.figures import Figures
from nbtools._engine.prices import usd
from nbtools._views.escaping import escape
from nbtools._views.style import framed

_HEAD = ("model A", "model B", "A wins", "ties", "B wins", "no verdict")


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def bias_text(bias: float | None) -> str:
    if bias is None:
        return "position bias: no pair got two verdicts"
    return (f"position bias {bias:.0%}: the share of pairs where both askings picked the same position (so a "
            "different reply), counted as ties")


def judge_cost(judge: str, figures: Figures | None) -> str:
    if figures is None:
        return f"judge {judge}: nothing to compare (no prompt had a reply from two models)"
    cost = "cost unknown" if figures.cost is None else f"cost {usd(figures.cost)}"
    tokens = (figures.prompt_tokens or 0) + (figures.completion_tokens or 0)
    return (f"judge {judge}: {figures.total} requests (each pair asked twice, the order swapped), "
            f"{figures.invalid} invalid; its own {tokens:,} tokens, {cost}")


class PairwiseView:
    def __init__(self, pairs: Sequence[Mapping[str, Any]], rates: Mapping[str, float | None], bias: float | None,
                 judge: str, figures: Figures | None) -> None:
        self.pairs, self.rates, self.bias, self.judge, self.figures = pairs, rates, bias, judge, figures

    def _cells(self, pair: Mapping[str, Any]) -> list[str]:
        return [str(pair[key]) for key in ("model_a", "model_b", "a_wins", "ties", "b_wins", "no_verdict")]

    def text(self) -> str:
        lines = ["Pairwise verdicts (each pair asked twice, the order swapped; a disagreement is a tie)",
                 " | ".join(_HEAD), *(" | ".join(self._cells(pair)) for pair in self.pairs),
                 "win rate (a tie counts half): " + ", ".join(f"{m} {_rate(r)}" for m, r in self.rates.items()),
                 bias_text(self.bias), judge_cost(self.judge, self.figures)]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in _HEAD)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in self._cells(pair)) + "</tr>"
                       for pair in self.pairs)
        rates = "".join(f"<tr><td>{escape(m)}</td><td class='num'>{escape(_rate(r))}</td></tr>"
                        for m, r in self.rates.items())
        return framed(
            "<div><b>Pairwise verdicts</b> (each pair asked twice, the order swapped; a disagreement is a tie)</div>"
            f"<table><tr>{head}</tr>{body}</table>"
            f"<table><tr><th>model</th><th>win rate (ties half)</th></tr>{rates}</table>"
            f"<div class='note'>{escape(bias_text(self.bias))}</div>"
            f"<div class='muted'>{escape(judge_cost(self.judge, self.figures))}</div>")
