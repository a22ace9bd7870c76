"""Pairwise verdicts with the order swapped: ``result.pairwise(judge=...)`` on a several-model result.

For each prompt and each pair of models, the judge is asked which reply is better twice, with the two replies in
swapped positions. Two verdicts that name the same model are a win; two that disagree are a tie (the order, not the
replies, decided them). The position bias is the share of pairs whose two verdicts both picked the same position.
The judge's requests are a batch of their own (``.judged``), through the same engine as any batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._base.judging import PAIRWISE_SCHEMA, pairwise_prompt
from nbtools._engine import launch
from nbtools._engine.lifecycle import Run
from nbtools._engine.rows import OK, RequestResult
from nbtools._judge import judge_item, judge_settings
from nbtools._result import BatchResult
from nbtools._views.pairwise import PairwiseView
from nbtools._views.rich import Shown, View

if TYPE_CHECKING:
    import pandas

    from nbtools._engine.state import SeveralState


@dataclass
class Duel:
    """One prompt, one pair of models: the two verdicts (the winner's label, or None: no verdict) and the outcome."""

    index: int
    first: str  # the model whose reply was A in the first asking
    second: str
    verdicts: tuple[str | None, str | None] = (None, None)  # the letter each asking picked ("A"/"B")
    reasons: tuple[str, str] = ("", "")

    @property
    def decided(self) -> bool:
        return None not in self.verdicts

    @property
    def winner(self) -> str | None:
        """The model both askings picked; None for a tie (or no verdict)."""
        one, two = self.verdicts
        if one is None or two is None:
            return None
        picked = (self.first if one == "A" else self.second, self.second if two == "A" else self.first)
        return picked[0] if picked[0] == picked[1] else None

    @property
    def by_position(self) -> bool:
        """Both askings picked the same position (so different replies): the order decided."""
        return self.decided and self.verdicts[0] == self.verdicts[1]


class Pairwise(Shown):
    """Pairwise verdicts of a several-model result: wins, ties and losses per pair, a win rate per model (a tie
    counts half), and the judge's position bias. ``to_pandas()`` gives the pairs, ``win_rates()`` the models,
    ``judged`` the judge's own batch (its requests, figures and cost)."""

    def __init__(self, labels: list[str], duels: list[Duel], judged: BatchResult | None, judge: str) -> None:
        self.labels, self.duels, self.judged, self.judge = labels, duels, judged, judge

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """Per pair of models: wins of each, ties, and the comparisons without a verdict."""
        found = []
        for a, b in combinations(self.labels, 2):
            mine = [d for d in self.duels if (d.first, d.second) == (a, b)]
            decided = [d for d in mine if d.decided]
            wins_a = sum(d.winner == a for d in decided)
            wins_b = sum(d.winner == b for d in decided)
            found.append({"model_a": a, "model_b": b, "a_wins": wins_a, "ties": len(decided) - wins_a - wins_b,
                          "b_wins": wins_b, "no_verdict": len(mine) - len(decided)})
        return found

    def win_rates(self) -> dict[str, float | None]:
        """Per model: (wins + ties / 2) / decided comparisons it was in; None when it was in none."""
        rates: dict[str, float | None] = {}
        for label in self.labels:
            mine = [d for d in self.duels if d.decided and label in (d.first, d.second)]
            points = sum(1.0 if d.winner == label else 0.5 if d.winner is None else 0.0 for d in mine)
            rates[label] = points / len(mine) if mine else None
        return rates

    @property
    def position_bias(self) -> float | None:
        """The share of decided pairs whose two verdicts both picked the same position, not the same reply."""
        decided = [d for d in self.duels if d.decided]
        return sum(d.by_position for d in decided) / len(decided) if decided else None

    def to_pandas(self) -> pandas.DataFrame:
        """One row per pair of models: model_a, model_b, a_wins, ties, b_wins, no_verdict."""
        try:
            import pandas as pd
        except ImportError:
            raise NbtoolsError("to_pandas() needs pandas, which is not installed: pip install pandas") from None
        return pd.DataFrame.from_records(self.pairs, columns=["model_a", "model_b", "a_wins", "ties", "b_wins",
                                                              "no_verdict"])

    def fill(self, row: RequestResult) -> None:
        """One of the judge's replies: the letter it picked (or None), onto its duel."""
        duel = self.duels[row.index // 2]
        letter = row.data.get("winner") if row.status == OK and row.data is not None else None
        verdicts, reasons = list(duel.verdicts), list(duel.reasons)
        verdicts[row.index % 2] = letter if letter in ("A", "B") else None
        reasons[row.index % 2] = str(row.data.get("reason", "")) if row.data is not None else ""
        duel.verdicts, duel.reasons = (verdicts[0], verdicts[1]), (reasons[0], reasons[1])

    def retry_invalid(self, **options: Any) -> Pairwise:
        """Ask the judge again where its reply did not parse (as ``BatchResult.retry_invalid``), then recount."""
        if self.judged is not None and self.judged.invalid:
            self.judged.retry_invalid(**options)
            for row in self.judged.rows:
                self.fill(row)
        return self

    def _view(self) -> View:
        figures = None if self.judged is None else self.judged.summary()
        return PairwiseView(self.pairs, self.win_rates(), self.position_bias, self.judge, figures)


def prepare(result: SeveralState[Any], spent: float | None, judge: Any, rubric: str | None,
            options: dict[str, Any]) -> tuple[Pairwise, Run[Any] | None]:
    """The pairwise verdicts to come (filled as the judge answers) and the judge's run (not yet started); ``spent``:
    what the batch cost, taken from its ``max_cost``."""
    if not result.done:
        raise ConfigError("this batch is still running: await it (or result.wait()) before pairwise()")
    item = judge_item(judge if judge is not None else result.options.judge)
    if rubric is not None and (not isinstance(rubric, str) or "{" in rubric):
        raise ConfigError("pairwise(rubric=...) is what 'better' means, in plain text (the question and both replies "
                          "are added): e.g. rubric='Which reply gives the right number?'")
    parts = list(result.by_model.values())
    labels = [part.label for part in parts]
    duels, prompts = [], []
    for i in range(len(parts[0].rows)):
        for a, b in combinations(range(len(parts)), 2):
            one, two = parts[a].rows[i], parts[b].rows[i]
            if one.status != OK or two.status != OK:
                continue
            duels.append(Duel(one.index, labels[a], labels[b]))
            prompts += [_ask(one, one, two, rubric), _ask(one, two, one, rubric)]
    if not prompts:
        return Pairwise(labels, duels, None, item.label), None
    remaining = None if result.options.max_cost is None else result.options.max_cost - (spent or 0.0)
    settings, key = judge_settings(result.options, item, PAIRWISE_SCHEMA, remaining, options)
    batch = launch.prepare_one(prompts, BatchResult, api_key=key, **settings)
    outcome = Pairwise(labels, duels, batch, item.label)
    return outcome, launch.run_for(batch, outcome.fill)


def _ask(row: RequestResult, first: RequestResult, second: RequestResult, rubric: str | None) -> str:
    return pairwise_prompt(row.prompt_text, first.text or "", second.text or "", row.expected, rubric)
