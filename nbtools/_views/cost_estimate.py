"""A dry run shown: what a batch would send and cost, its facts then a table of its first rows; with several
models, one cost line per model."""

from __future__ import annotations

from collections.abc import Mapping

from nbtools._engine.plan import CostEstimate, EstimateRow
from nbtools._engine.prices import usd
from nbtools._views.escaping import clip, escape
from nbtools._views.grid import colour
from nbtools._views.report import DISPLAY_LIMIT
from nbtools._views.style import framed


def judge_line(judge: CostEstimate, label: str) -> str:
    """The judge's pass in a dry run: its requests and cost range, each judged reply at its worst case."""
    return f"{label}: {dry_run_cost_line(judge)} (each judged reply priced at its max_tokens worst case)"


def dry_run_facts(d: CostEstimate) -> list[tuple[str, str]]:
    """(label, figure) for the whole batch: requests, tokens, the worst case, cost, price and the cap."""
    worst = (f"{d.max_completion_tokens:,} ({d.max_tokens:,} per reply, from max_tokens)"
             if d.max_completion_tokens is not None else "no bound: set max_tokens to know the worst case")
    if d.price is None:
        cost = f"unknown: {d.price_note}"
    elif d.image_tokens is None:
        cost = f"unknown: no published image-token rule for {d.model or 'this model'} (image tokens unknown)"
    elif d.cost_high is None:
        cost = f"at least {usd(d.cost_low or 0.0)} (the prompts alone); no upper bound without max_tokens"
    else:
        cost = f"{usd(d.cost_low or 0.0)} to {usd(d.cost_high)}"
    lines = [
        ("requests", f"{d.requests:,}" + (f" ({d.cached:,} more from the reply cache, free)" if d.cached else "")),
        ("prompt tokens", f"{d.prompt_tokens:,}, {d.tokens_label}" + _images(d)),
        ("reply tokens at most", worst),
        ("cost", cost),
    ]
    if d.price is not None:
        lines.append(("price", str(d.price)))
    lines += prompt_cache_facts(d)
    judge = getattr(d, "judge", None)
    if judge is not None:
        lines.append(("judge", judge_line(judge, getattr(d, "judge_label", "judge"))))
    if d.max_cost is not None and d.cost_high is not None:
        lines.append(("max_cost", f"{usd(d.max_cost)}: {d.fit_in_cap():,} of {d.requests:,} requests "
                                  "fit even if every reply is max_tokens long"))
    return lines


def _images(d: CostEstimate) -> str:
    if d.image_tokens is None:
        return "; image tokens unknown (not counted)"
    return f"; {d.image_tokens:,} of them for images" if d.image_tokens else ""
def prompt_cache_facts(d: CostEstimate) -> list[tuple[str, str]]:
    """The prefix the rows share, what the provider's prompt cache would make of it, and the layout note."""
    c = d.cache
    if c is None or not (c.prefix.tokens or c.note):
        return []
    lines = [("shared prefix", f"{c.prefix.describe()}, {d.tokens_label}")]
    if c.minimum is None:
        cache = "not cached: " + ("Anthropic's OpenAI-compatible endpoint does not cache prompts (via='batch' does)"
                                  if d.endpoint.provider == "anthropic" else "this provider does not cache prompts here")
    elif c.prefix.tokens < c.minimum:
        cache = f"not cached: shorter than the {c.minimum:,} tokens the provider caches"
    else:
        how = "after one warm-up request" if c.warm_up else "a cold fan-out: the first wave all miss"
        saving = "" if c.saving is None else f"; saves about {usd(c.saving)} against no caching"
        cache = f"about {c.readers:,} of {d.requests:,} requests would read it ({how}){saving}"
    lines.append(("prompt cache", cache))
    if c.note:
        lines.append(("layout", c.note))
    return lines


def _head(d: CostEstimate) -> str:
    return f"dry run (nothing sent): {d.model or '(the server’s first model)'} @ {d.endpoint.host}"


class DryRunView:
    """One endpoint's dry run: its facts, then its first rows."""

    def __init__(self, estimate: CostEstimate) -> None:
        self.estimate = estimate

    def text(self) -> str:
        d = self.estimate
        out = [_head(d)] + [f"  {k}: {v}" for k, v in dry_run_facts(d)]
        out.append("#  | prompt tokens | cost | prompt")
        for r in d.rows[:DISPLAY_LIMIT]:
            out.append(f"{r.index} | {r.prompt_tokens} | {_range(r)} | {clip(r.prompt, 60)}")
        if len(d.rows) > DISPLAY_LIMIT:
            out.append(f"… {len(d.rows) - DISPLAY_LIMIT} more rows (.to_dicts())")
        return "\n".join(out)

    def html(self) -> str:
        d = self.estimate
        facts = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in dry_run_facts(d))
        head = "<tr><th>#</th><th>prompt</th><th>prompt tokens</th><th>reply tokens at most</th><th>cost</th></tr>"
        body = "".join(
            f"<tr><td class='num'>{r.index}</td><td>{escape(clip(r.prompt, 60))}</td>"
            f"<td class='num'>{r.prompt_tokens:,}</td><td class='num'>{_worst(r)}</td>"
            f"<td class='num'>{escape(_range(r))}</td></tr>"
            for r in d.rows[:DISPLAY_LIMIT]
        )
        more = len(d.rows) - DISPLAY_LIMIT
        tail = f"<div class='muted'>… {more:,} more rows (<code>.to_dicts()</code>)</div>" if more > 0 else ""
        return framed(f"<div><b>{escape(_head(d))}</b></div><table>{facts}</table><table>{head}{body}</table>{tail}")


def _worst(r: EstimateRow) -> str:
    return "–" if r.max_completion_tokens is None else f"{r.max_completion_tokens:,}"


def _range(r: EstimateRow) -> str:
    if r.cached:
        return "$0.00 (cached)"
    if r.cost_low is None:
        return "unknown"
    return f"{usd(r.cost_low)} – {usd(r.cost_high)}" if r.cost_high is not None else f"≥ {usd(r.cost_low)}"


def dry_run_cost_line(d: CostEstimate) -> str:
    """One model's line of a several-model dry run: requests, prompt tokens, the cost range and what its prompt cache
    would save."""
    saving = d.cache.saving if d.cache is not None and d.cache.readers else None
    return (f"{d.requests:,} requests, {d.prompt_tokens:,} prompt tokens; cost {dict(dry_run_facts(d))['cost']}"
            + (f"; its prompt cache saves about {usd(saving)}" if saving else ""))


class DryRunsView:
    """A dry run per model: one cost line each, in the model's colour."""

    def __init__(self, by_model: Mapping[str, CostEstimate], judge: tuple[str, CostEstimate] | None = None) -> None:
        self.lines = [(label, dry_run_cost_line(estimate)) for label, estimate in by_model.items()]
        if judge is not None:
            self.lines.append(("judge", judge_line(judge[1], judge[0])))

    def text(self) -> str:
        return "\n".join(["dry run (nothing sent), per model:", *(f"  {label}: {line}" for label, line in self.lines)])

    def html(self) -> str:
        rows = "".join(f"<tr><th style='color:{colour(slot)}'>{escape(label)}</th><td>{escape(line)}</td></tr>"
                       for slot, (label, line) in enumerate(self.lines))
        return framed(f"<div><b>dry run (nothing sent), per model</b></div><table>{rows}</table>")
