"""A dry run: what a batch would cost, with nothing sent.

Per row and in total: the prompt tokens (counted with the model's tokenizer where one is installed,
else estimated, and labelled as such), the worst case from max_tokens, and the cost range from a
reply of no tokens to one of max_tokens. Rows the reply cache would answer cost nothing. The figures are
nbtools._engine.plan's, from the same plan a run sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nbtools._base.options import options_from
from nbtools._base.prompts import Prompt, normalize_prompts
from nbtools._engine import launch
from nbtools._engine.plan import CostEstimate
from nbtools._judge import dry_judge
from nbtools._views.cost_estimate import DryRunsView, DryRunView
from nbtools._views.rich import Shown, View


class DryRun(Shown, CostEstimate):
    """What a batch would send and cost. Renders itself (text and HTML); ``.to_dicts()`` per row. With judge=,
    ``.judge`` is what the judge's pass would cost (a DryRun of its own), never added to this one's figures."""

    judge: DryRun | None = None
    judge_label = "judge"

    def _view(self) -> View:
        return DryRunView(self)


class DryRuns(Shown):
    """A dry run per model (``models=[...]``): what the same prompts would cost on each, side by side."""

    judge: DryRun | None = None
    judge_label = "judge"

    def __init__(self, by_model: dict[str, DryRun]) -> None:
        self.by_model = by_model

    def _view(self) -> View:
        return DryRunsView(self.by_model, None if self.judge is None else (self.judge_label, self.judge))


def dry_run(prompts: Prompt | Iterable[Prompt], *, api_key: str | None = None, **options: Any) -> DryRun | DryRuns:
    """Same arguments as ``batch()``; sends nothing and returns what the batch would cost (with
    ``models=[...]``, a DryRuns: what it would cost on each model)."""
    if options.get("judge") is None:
        return launch.dry_run(prompts, DryRun, DryRuns, api_key=api_key, **options)
    items = normalize_prompts(prompts)  # read once: the batch's and the judge's
    estimate = launch.dry_run(items, DryRun, DryRuns, api_key=api_key, **options)
    label, judge_prompts, settings = dry_judge(options_from(options), items)
    judged = launch.dry_run(judge_prompts, DryRun, DryRuns, **settings)
    assert isinstance(judged, DryRun)
    estimate.judge, estimate.judge_label = judged, label
    return estimate
