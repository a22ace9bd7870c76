"""The judge (``judge=``, ``rubric=``, ``judge_scale=``): a second batch, through the same engine, that grades each
reply of a finished batch.

Its requests are a batch of their own (``result.judged``): its own endpoint, concurrency and rate limits, the reply
cache, ``via=``, what is left of ``max_cost`` after the batch it judges. Each verdict lands on the judged row
(``row.judge``); a judge reply that does not fit the verdict's schema is an invalid output of the judge's batch, and
``result.retry_invalid()`` asks it again. The judge's cost and tokens stay on the judge's batch, never the judged one's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbtools._base.errors import ConfigError
from nbtools._base.judging import DEFAULT_RUBRIC, DEFAULT_RUBRIC_WITH_REFERENCE, Scale, Verdict, rubric_prompt
from nbtools._base.options import OPTIONS, BatchOptions, JudgeModel, ModelItem
from nbtools._base.prompts import Prompt
from nbtools._engine import launch
from nbtools._engine.endpoints import PROFILES
from nbtools._engine.failures import INVALID_OUTPUT
from nbtools._engine.figures import JudgeFigure
from nbtools._engine.lifecycle import Run
from nbtools._engine.rows import ERROR, OK, RequestResult
from nbtools._engine.state import BatchState

JUDGE_REPLY_TOKENS = 300  # a verdict is a short JSON object: the bound that prices the judge's worst case
JUDGED = tuple(name for name, (_, spec) in OPTIONS.items() if spec.judged)  # what the judge takes from the batch


def judge_item(value: Any) -> ModelItem:
    """``judge=`` as given (a name, a dict, or checked already), with its provider known; else a one-line error."""
    item = JudgeModel().check("judge", value, "e.g. judge='sim:sim-judge'")
    provider = item.settings.get("provider")
    if provider is not None and provider not in PROFILES:
        raise ConfigError(f"judge={item.label!r}: unknown provider {provider!r}: choose one of {', '.join(PROFILES)} "
                          "(e.g. 'sim:sim-judge'), or give a dict with base_url=")
    return item


def judge_settings(options: BatchOptions, item: ModelItem, schema: str, remaining: float | None,
                   overrides: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The judge batch's options (its endpoint's, the batch's retries and cache, the verdict's schema) and key."""
    base: dict[str, Any] = {name: getattr(options, name) for name in JUDGED}
    base.update(schema=schema, max_tokens=JUDGE_REPLY_TOKENS)
    if remaining is not None and base["via"] == "online":  # one cap over the batch and its judge
        base["max_cost"] = max(remaining, 0.0)
    settings, key = launch.endpoint_options(item, base, None)
    settings.update(overrides)
    return settings, key


@dataclass
class Judging:
    """A judge's batch over a batch's replies: ``batch`` (the judge's requests, its own figures), ``judged`` (the
    batch's rows, in the judge batch's order), the scale and the judge's label."""

    batch: BatchState  # a nbtools.BatchResult (made by the caller: this module sits below it)
    judged: list[RequestResult]
    scale: Scale
    label: str

    def fill(self, row: RequestResult) -> None:
        """A judge's reply: its verdict onto the row it judged (an off-scale score is an invalid output)."""
        target = self.judged[row.index]
        target.judge = None
        if row.status != OK or row.data is None:
            return
        try:
            target.judge = Verdict.of(row.data, self.scale)
        except (ValueError, KeyError, TypeError) as exc:
            row.status, row.error_kind, row.error = ERROR, INVALID_OUTPUT, f"the reply does not match the schema: {exc}"
            self.batch.rows_changed()

    def refill(self) -> None:
        """Every verdict again, from the judge's rows (after ``retry_invalid()``)."""
        for row in self.batch.rows:
            self.fill(row)

    def figure(self, rows: Sequence[RequestResult] | None = None) -> JudgeFigure:
        """The judge's figures over ``rows`` (default: every row it judged): verdicts, their mean, invalid replies,
        and the judge's own tokens and cost."""
        wanted = None if rows is None else {id(row) for row in rows}
        pairs = [(mine, judged) for mine, judged in zip(self.batch.rows, self.judged, strict=True)
                 if wanted is None or id(judged) in wanted]
        verdicts = [judged.judge.score for _, judged in pairs if judged.judge is not None]
        costs = [mine.cost for mine, _ in pairs]
        return JudgeFigure(
            label=self.label, scale=str(self.scale), requests=len(pairs), verdicts=len(verdicts),
            mean=sum(verdicts) / len(verdicts) if verdicts else None,
            invalid=sum(mine.error_kind == INVALID_OUTPUT and mine.status == ERROR for mine, _ in pairs),
            failed=sum(mine.status != OK for mine, _ in pairs),
            tokens=sum((mine.prompt_tokens or 0) + (mine.completion_tokens or 0) for mine, _ in pairs),
            cost=None if self.batch.price is None else sum(c for c in costs if c is not None),
        )


def prepare(result: BatchState, make: launch.MakeOne[Any], spent: float | None, judge: Any = None,
            rubric: str | None = None, scale: Any = None, **overrides: Any) -> tuple[Judging, Run[Any]] | None:
    """The judge's batch over ``result``'s replies (not yet started, its result built by ``make``; ``spent``: what the
    batch cost, taken from ``max_cost``), or None when no reply is there to judge. ``judge``, ``rubric`` and
    ``scale`` default to the batch's own options; ``overrides`` are the judge batch's."""
    options = result.options
    item = judge_item(judge if judge is not None else options.judge)
    scale = scale if scale is not None else options.judge_scale
    checked = BatchOptions(rubric=rubric or options.rubric, judge_scale=scale)
    judged = [row for row in result.rows if row.status == OK]
    if not judged:
        return None
    text = checked.rubric or (DEFAULT_RUBRIC_WITH_REFERENCE if options.expected is not None else DEFAULT_RUBRIC)
    prompts = [rubric_prompt(text, checked.judge_scale, row.prompt_text, row.text or "", row.expected) for row in judged]
    remaining = None if options.max_cost is None else options.max_cost - (spent or 0.0)
    settings, key = judge_settings(options, item, checked.judge_scale.schema, remaining, overrides)
    batch = launch.prepare_one(prompts, make, api_key=key, **settings)
    judging = Judging(batch, judged, checked.judge_scale, item.label)
    return judging, launch.run_for(batch, judging.fill)


def wanted(result: BatchState) -> bool:
    """Does this finished batch get a judge pass? (judge= given, and the batch neither failed nor was cancelled)."""
    return result.options.judge is not None and result.failure is None and not result.cancelled


def dry_judge(options: BatchOptions, prompts: Sequence[Prompt]) -> tuple[str, list[str], dict[str, Any]]:
    """For a dry run: the judge's label, its worst-case prompts (each reply max_tokens long; with no max_tokens, the
    rubric and the prompt alone) for every reply the batch would get, and its batch's options."""
    item = judge_item(options.judge)
    scale, bound = options.judge_scale, options.reply_bound or 0
    text = options.rubric or (DEFAULT_RUBRIC_WITH_REFERENCE if options.expected is not None else DEFAULT_RUBRIC)
    worst = "word " * bound
    expected = options.expected or (None,) * len(prompts)
    one = [rubric_prompt(text, scale, RequestResult(0, prompt).prompt_text, worst, want)
           for prompt, want in zip(prompts, expected, strict=True)]
    copies = len(options.models or ()) or 1
    settings, key = judge_settings(options, item, scale.schema, None, {})
    if key is not None:
        settings["api_key"] = key
    return item.label, one * options.repeat * copies, settings
