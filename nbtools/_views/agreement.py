"""The judge checked against people, shown: Cohen's kappa, the observed agreement, and the rows where they differ.
Prompts, replies and the judge's reasons are untrusted text: every piece goes through ``escape``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nbtools._views.escaping import clip, escape
from nbtools._views.style import framed

SHOWN = 10  # disagreeing rows shown (all of them: .disagreements)


def kappa_text(judge: str, kappa: float, observed: float, compared: int, left_out: int) -> str:
    if compared == 0:
        return f"judge {judge} vs the labels: no row has both a label and a verdict"
    value = "undefined (one value throughout)" if math.isnan(kappa) else f"{kappa:.2f}"
    return (f"judge {judge} vs the labels: Cohen's kappa {value}, {observed:.0%} the same, over {compared} rows"
            + (f" ({left_out} without a label or a verdict left out)" if left_out else ""))


class AgreementView:
    def __init__(self, judge: str, kappa: float, observed: float, compared: int, left_out: int,
                 rows: Sequence[tuple[str, str, str, str, str]]) -> None:
        self.head = kappa_text(judge, kappa, observed, compared, left_out)
        self.rows = rows

    def text(self) -> str:
        lines = [self.head, f"{len(self.rows)} disagreements" + (":" if self.rows else "")]
        lines += [f"  {clip(p, 40)} | {clip(r, 40)} | label {h} | judge {v} | {clip(why, 60)}"
                  for p, r, h, v, why in self.rows[:SHOWN]]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("prompt", "reply", "label", "judge", "reason"))
        body = "".join("<tr>" + "".join(f"<td>{escape(clip(c, 80))}</td>" for c in row) + "</tr>"
                       for row in self.rows[:SHOWN])
        more = len(self.rows) - SHOWN
        tail = f"<div class='muted'>… {more} more (<code>.disagreements</code>)</div>" if more > 0 else ""
        return framed(f"<div><b>{escape(self.head)}</b></div>"
                      f"<div class='muted'>{len(self.rows)} disagreements</div>"
                      f"<table><tr>{head}</tr>{body}</table>{tail}")
