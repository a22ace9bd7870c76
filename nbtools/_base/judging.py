"""What a judge is asked and what it answers: the rubric's template, the scale, the verdict and its schema.

The judge's prompt is the rubric with ``{prompt}``, ``{reply}`` and ``{expected}`` filled in, each in a tag of its
own (``<question>``, ``<reply>``, ``<reference>``: the judged text is data, not instructions), then one line saying
the JSON to answer with. A pairwise prompt holds ``<reply A>`` and ``<reply B>``. The verdict's schema goes out as
structured output where the judge's endpoint takes it; a reply that does not fit is an invalid output.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from nbtools._base.errors import ConfigError

PLACEHOLDERS = ("prompt", "reply", "expected")
RUBRIC_EXAMPLE = "e.g. rubric='Is this reply to {prompt} correct? Reply: {reply}. Reference: {expected}'"
SCALE_EXAMPLE = "e.g. judge_scale='1-5', '1-10' or 'pass/fail'"
PASS_FAIL = "pass/fail"
DEFAULT_RUBRIC = "Judge how correct and helpful the reply is as an answer to the question.\n{prompt}\n{reply}"
DEFAULT_RUBRIC_WITH_REFERENCE = ("Judge whether the reply answers the question correctly, given the reference "
                                 "answer.\n{prompt}\n{reply}\n{expected}")
PAIRWISE = "Which reply answers the question better: A or B? Judge what they say, not their order or length."
NO_REFERENCE = "(none given)"  # what {expected} shows the judge when the row has no reference
_RANGE = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")


@dataclass(frozen=True)
class Scale:
    """A score from ``low`` to ``high``, or pass/fail (``low`` 0, ``high`` 1, ``passfail``)."""

    low: int
    high: int
    passfail: bool = False

    def __str__(self) -> str:
        return PASS_FAIL if self.passfail else f"{self.low}-{self.high}"

    @property
    def schema(self) -> str:
        """The verdict's shape, in the short form nbtools._base.schemas reads."""
        return "pass: bool, reason: str" if self.passfail else "score: int, reason: str"

    @property
    def ask(self) -> str:
        if self.passfail:
            return 'Answer with only a JSON object: {"pass": true or false, "reason": "<one short sentence>"}.'
        return (f'Answer with only a JSON object: {{"score": <an integer from {self.low} to {self.high}, '
                f'{self.high} best>, "reason": "<one short sentence>"}}.')


def to_scale(name: str, value: Any) -> Scale:
    """``"1-5"`` (any whole-number range), ``"pass/fail"``, or a Scale; else a one-line ConfigError."""
    if isinstance(value, Scale):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if text in (PASS_FAIL, "pass-fail", "passfail"):
        return Scale(0, 1, passfail=True)
    found = _RANGE.match(text)
    if found is None or int(found.group(1)) >= int(found.group(2)):
        raise ConfigError(f"{name}={value!r} must be a range of whole numbers low-high, or 'pass/fail': {SCALE_EXAMPLE}")
    return Scale(int(found.group(1)), int(found.group(2)))


def check_rubric(name: str, value: Any) -> str:
    """A rubric: text whose placeholders are among {prompt}, {reply}, {expected}, with {reply} in it."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}={value!r} must be a non-empty text: {RUBRIC_EXAMPLE}")
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (write a literal brace as {{{{ or }}}}): {RUBRIC_EXAMPLE}") from None
    unknown = [field for field in fields if field not in PLACEHOLDERS]
    if unknown:
        raise ConfigError(f"{name} has the unknown placeholder {{{unknown[0]}}}: use {{prompt}}, {{reply}} and "
                          f"{{expected}} (a literal brace is {{{{): {RUBRIC_EXAMPLE}")
    if "reply" not in fields:
        raise ConfigError(f"{name} must show the judge the reply with {{reply}}: {RUBRIC_EXAMPLE}")
    return value


def _tag(name: str, text: str) -> str:
    return f"<{name}>\n{text}\n</{name}>"


def rubric_prompt(rubric: str, scale: Scale, prompt: str, reply: str, expected: Any) -> str:
    """What the judge is asked about one reply."""
    reference = NO_REFERENCE if expected is None else str(expected)
    filled = rubric.format(prompt=_tag("question", prompt), reply=_tag("reply", reply),
                           expected=_tag("reference", reference))
    return f"{filled}\n\n{scale.ask}"


def pairwise_prompt(prompt: str, first: str, second: str, expected: Any, criterion: str | None = None) -> str:
    """What the judge is asked about two replies, in this order (``criterion``: what "better" means)."""
    filled = "\n".join([criterion or PAIRWISE, _tag("question", prompt), _tag("reply A", first), _tag("reply B", second)])
    if expected is not None:
        filled += "\n" + _tag("reference", str(expected))
    return filled + '\n\nAnswer with only a JSON object: {"winner": "A" or "B", "reason": "<one short sentence>"}.'


PAIRWISE_SCHEMA = "winner: A|B, reason: str"


@dataclass(frozen=True)
class Verdict:
    """A judge's verdict on one reply: ``score`` on the scale (pass/fail: 1.0 or 0.0), ``passed`` with pass/fail,
    and the judge's short ``reason``."""

    score: float
    reason: str
    passed: bool | None = None

    @classmethod
    def of(cls, data: dict[str, Any], scale: Scale) -> Verdict:
        """The verdict in a reply that fits the scale's schema; ValueError when its score is off the scale."""
        reason = str(data.get("reason", ""))
        if scale.passfail:
            passed = bool(data["pass"])
            return cls(float(passed), reason, passed)
        score = data["score"]
        if not scale.low <= score <= scale.high:
            raise ValueError(f"the score {score} is off the scale {scale}")
        return cls(float(score), reason)
