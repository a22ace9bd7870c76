"""The quality-latency-cost trade-off of a several-model result, in one table and one picture: ``result.tradeoff()``.

One row per model: its quality (the pass rate of a check, or the mean score of the judge's verdicts), p50 and p95
latency, its cost per 1,000 prompts and its errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._engine.figures import Figures
from nbtools._views.rich import Shown, View
from nbtools._views.tradeoff_chart import TradeoffPoint, TradeoffView

if TYPE_CHECKING:
    import pandas

JUDGE = "judge"


def quality_of(figures: Figures, quality: str) -> tuple[float | None, bool]:
    """(the model's quality by ``quality``, whether it is a share): a check's pass rate or mean, or the judge's."""
    if quality == JUDGE:
        judge = figures.judge
        return (None if judge is None else judge.mean), judge is not None and judge.scale == "pass/fail"
    found = next(f for f in figures.checks if f.name == quality)
    return found.value, not found.numeric


def choose(quality: str | None, checks: Sequence[str], judged: bool) -> str:
    """The quality measure: the one asked for, else the judge's score, else the first check; else a one-line error."""
    known = [*checks, *([JUDGE] if judged else [])]
    if quality is None:
        if not known:
            raise ConfigError("tradeoff() needs a quality: run the batch with checks= (e.g. checks={'right': "
                              "'number'}) or judge= (e.g. judge='sim:sim-judge')")
        return JUDGE if judged else known[0]
    if quality not in known:
        raise ConfigError(f"tradeoff(quality={quality!r}): choose one of {', '.join(map(repr, known)) or 'none'} "
                          "(a check's name, or 'judge')")
    return quality


class Tradeoff(Shown):
    """Quality, latency and cost per model: ``points`` (one per model), a table and a chart, ``to_pandas()``."""

    def __init__(self, points: list[TradeoffPoint], quality: str, share: bool) -> None:
        self.points, self.quality, self.share = points, quality, share

    def to_pandas(self) -> pandas.DataFrame:
        """One row per model: quality, p50, p95, cost_per_1k, errors (indexed by model)."""
        try:
            import pandas as pd
        except ImportError:
            raise NbtoolsError("to_pandas() needs pandas, which is not installed: pip install pandas") from None
        frame = pd.DataFrame({
            "quality": pd.array([p.quality for p in self.points], dtype="Float64"),
            "p50": pd.array([p.p50 for p in self.points], dtype="Float64"),
            "p95": pd.array([p.p95 for p in self.points], dtype="Float64"),
            "cost_per_1k": pd.array([p.cost_per_1k for p in self.points], dtype="Float64"),
            "errors": pd.array([p.errors for p in self.points], dtype="Int64"),
        }, index=pd.Index([p.model for p in self.points], name="model"))
        frame.attrs["quality"] = self.quality
        return frame

    def _view(self) -> View:
        return TradeoffView(self.points, self.quality, self.share)


def tradeoff(by_model: dict[str, Figures], prompts: int, quality: str | None, checks: Sequence[str],
             judged: bool) -> Tradeoff:
    chosen = choose(quality, checks, judged)
    points, share = [], True
    for slot, (label, s) in enumerate(by_model.items()):
        value, share = quality_of(s, chosen)
        per_1k = None if s.cost is None or not prompts else s.cost / prompts * 1000
        points.append(TradeoffPoint(label, value, s.p50, s.p95, per_1k, s.errors, slot))
    return Tradeoff(points, "judge score" if chosen == JUDGE else f"check {chosen!r}", share)


def for_result(result: Any, quality: str | None) -> Tradeoff:
    """``result``'s trade-off (a MultiModelResult, done)."""
    if not result.done:
        raise ConfigError("this batch is still running: await it (or result.wait()) before tradeoff()")
    by_model = result._by_model_figures()
    prompts = len(result.rows) // max(len(by_model), 1)
    return tradeoff(by_model, prompts, quality, list(result.options.checks or ()), result._judging is not None)
