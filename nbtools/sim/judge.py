"""``sim-judge``: a simulated judge that answers nbtools' rubric and pairwise prompts in the verdict's JSON format.

It reads the prompt as nbtools writes it: the question in ``<question>``, the reply in ``<reply>`` (pairwise:
``<reply A>`` and ``<reply B>``), the reference, when known, in ``<reference>``, and the scale it is asked for
(``from 1 to 5``, or pass/fail). It is right when it can be: a reply to a sum is right when its first number is the
sum (or the reference). ``bias`` (the simulator's ``judge_bias`` knob) is the share of pairwise verdicts that pick
the first reply whatever it says, decided per prompt, so the same question always gets the same verdict. Between two
replies that are as right as each other it has a taste of its own (decided by their texts, whatever their order).
"""

from __future__ import annotations

import hashlib
import json
import re

from nbtools._base.judging import NO_REFERENCE

NAME = "sim-judge"
_TAG = re.compile(r"<(question|reference|reply(?: [AB])?)>(.*?)</\1>", re.S)
_SUM = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SCALE = re.compile(r"integer from (-?\d+) to (-?\d+)")


def _right(question: str, reply: str, reference: str | None) -> bool | None:
    """Is the reply right? None when neither a reference nor a sum says."""
    found = _NUMBER.search(reply)
    if reference is not None:
        want = _NUMBER.search(reference)
        if want is not None:
            return found is not None and float(found.group()) == float(want.group())
        return reference.strip().lower() in reply.lower()
    total = _SUM.search(question)
    if total is None:
        return None
    return found is not None and float(found.group()) == int(total.group(1)) + int(total.group(2))


def verdict(prompt: str, bias: float = 0.0) -> str:
    """The judge's reply to one prompt (the whole of what it was asked)."""
    parts = {name: text.strip() for name, text in _TAG.findall(prompt)}
    question, reference = parts.get("question", ""), parts.get("reference")
    if reference == NO_REFERENCE:
        reference = None
    if "reply A" in parts:
        draw = hashlib.blake2b(prompt.encode(), digest_size=8).digest()[0] / 256
        if draw < bias:
            return json.dumps({"winner": "A", "reason": "The first reply reads better."})
        a = _right(question, parts["reply A"], reference)
        b = _right(question, parts.get("reply B", ""), reference)
        if a == b:  # both right, both wrong, or no way to tell: a taste of its own for one of the two texts
            first, second = parts["reply A"], parts.get("reply B", "")
            liked = min(first, second, key=lambda text: hashlib.blake2b(text.encode(), digest_size=8).digest())
            winner = "A" if liked == first else "B"
            return json.dumps({"winner": winner, "reason": "Both are about as good; this one reads slightly better."})
        return json.dumps({"winner": "A" if a else "B", "reason": "It gives the right answer."})
    right = _right(question, parts.get("reply", ""), reference)
    reason = "The answer is right." if right else ("The answer is wrong." if right is False else "It answers the question.")
    scale = _SCALE.search(prompt)
    if scale is None:  # pass/fail
        return json.dumps({"pass": right is not False, "reason": reason})
    low, high = int(scale.group(1)), int(scale.group(2))
    return json.dumps({"score": high if right is not False else low, "reason": reason})
