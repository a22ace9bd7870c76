"""Checking the judge against people: ``result.judge_agreement(labels)``.

The judge's verdicts (pass/fail, or the score) and a person's label for the same rows, compared: Cohen's kappa
(agreement beyond what chance would give), the confusion matrix and the rows where they disagree. Rows without a
label (None) or without a verdict are left out, and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtools._base.errors import ConfigError, NbtoolsError
from nbtools._base.judging import Scale
from nbtools._base.options import Expected
from nbtools._engine.rows import RequestResult
from nbtools._views.agreement import AgreementView
from nbtools._views.rich import Shown, View

if TYPE_CHECKING:
    import pandas

_PASS = {"pass": True, "fail": False, "yes": True, "no": False, "true": True, "false": False}


def cohen_kappa(first: Sequence[Any], second: Sequence[Any]) -> float:
    """Cohen's kappa of two raters over the same items: (observed - chance) / (1 - chance); NaN when chance
    agreement is 1 (both gave one and the same value throughout)."""
    n = len(first)
    if n == 0 or n != len(second):
        raise ValueError("cohen_kappa needs two equally long, non-empty sequences")
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    one, two = Counter(first), Counter(second)
    chance = sum(one[value] * two[value] for value in one) / (n * n)
    return float("nan") if chance == 1 else (observed - chance) / (1 - chance)


def _label(value: Any, scale: Scale) -> Any:
    """A person's label in the verdict's terms: True/False for pass/fail, a number on a scale."""
    if scale.passfail:
        if isinstance(value, str) and value.strip().lower() in _PASS:
            return _PASS[value.strip().lower()]
        if isinstance(value, (bool, int)) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"judge_agreement(): the label {value!r} is not pass/fail: use True/False, 1/0 or 'pass'/'fail'")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"judge_agreement(): the label {value!r} is not a score on the scale {scale}: use numbers")
    return float(value)


class Agreement(Shown):
    """How far the judge agrees with people: ``kappa`` (Cohen's), ``observed`` (the share of equal verdicts),
    ``confusion`` (a DataFrame: labels down, verdicts across), ``disagreements`` (a DataFrame of those rows), and
    ``compared``/``left_out`` (rows with both a label and a verdict, and the others)."""

    def __init__(self, pairs: list[tuple[RequestResult, Any, Any]], left_out: int, judge: str) -> None:
        self.pairs, self.left_out, self.judge = pairs, left_out, judge
        labels, verdicts = [p[1] for p in pairs], [p[2] for p in pairs]
        self.compared = len(pairs)
        self.kappa = cohen_kappa(labels, verdicts) if pairs else float("nan")
        self.observed = sum(a == b for a, b in zip(labels, verdicts, strict=True)) / len(pairs) if pairs else float("nan")

    @property
    def confusion(self) -> pandas.DataFrame:
        pd = _pandas()
        values = sorted({p[1] for p in self.pairs} | {p[2] for p in self.pairs})
        counts = Counter((p[1], p[2]) for p in self.pairs)
        frame = pd.DataFrame([[counts[(a, b)] for b in values] for a in values], index=values, columns=values)
        frame.index.name, frame.columns.name = "label", "verdict"
        return frame

    @property
    def disagreements(self) -> pandas.DataFrame:
        pd = _pandas()
        records = [{"index": row.index, "label": row.label, "prompt": row.prompt_text, "reply": row.text,
                    "human": human, "verdict": verdict, "reason": row.judge.reason if row.judge else None}
                   for row, human, verdict in self.pairs if human != verdict]
        frame = pd.DataFrame.from_records(records, columns=["index", "label", "prompt", "reply", "human", "verdict",
                                                            "reason"])
        return frame if frame["label"].notna().any() else frame.drop(columns="label")

    def _view(self) -> View:
        shown = [(row.prompt_text, row.text or "", str(human), str(verdict), row.judge.reason if row.judge else "")
                 for row, human, verdict in self.pairs if human != verdict]
        return AgreementView(self.judge, self.kappa, self.observed, self.compared, self.left_out, shown)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise NbtoolsError("this needs pandas, which is not installed: pip install pandas") from None
    return pd


def agreement(rows: Sequence[RequestResult], labels: Any, scale: Scale, judge: str) -> Agreement:
    """The judge's verdicts on ``rows`` against ``labels`` (one per row, None where there is none)."""
    given = Expected().check("judge_agreement(labels)", labels, "e.g. judge_agreement([True, False, None, ...])")
    if len(given) != len(rows):
        raise ConfigError(f"judge_agreement() got {len(given)} labels for {len(rows)} rows: give one per row of the "
                          "result (None where there is none), in its order")
    pairs, left_out = [], 0
    for row, label in zip(rows, given, strict=True):
        if label is None or row.judge is None:
            left_out += 1
            continue
        verdict = row.judge.passed if scale.passfail else row.judge.score
        pairs.append((row, _label(label, scale), verdict))
    return Agreement(pairs, left_out, judge)
