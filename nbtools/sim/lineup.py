"""Named simulated models, each with its own speed, reply style, accuracy and list price.

So a comparison of models means something with no key: ask ``sim-mini``, ``sim-standard`` and
``sim-pro`` the same questions and they differ as real models do. A smaller model is faster and
cheaper, writes less and gets more sums wrong. Sums ("What is 17 + 25?") are how quality shows:
each model answers a share of them right (``accuracy``), decided per prompt and model, so the
same question always gets the same answer. Prices are made up, in the range of real small, mid
and large models, for the lesson only; cached input costs a tenth of input, as at OpenAI and Anthropic.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass

from nbtools.sim.replies import _CLOSERS, _MIDDLES, _OPENERS, Reply, count_words

_SUM = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)")


@dataclass(frozen=True)
class SimModel:
    name: str
    ttft: float  # mean seconds to the first token
    tokens_per_second: float
    words: tuple[int, int]  # shortest and longest reply, in words
    accuracy: float  # share of sums answered right
    price: tuple[float, float, float]  # made-up USD per million input, output and cached input tokens (0.1x input)

    def reply(self, last_user: str) -> Reply:
        rng = random.Random(hashlib.blake2b(f"{self.name}\0{last_user}".encode(), digest_size=16).digest())
        target = rng.randint(*self.words)
        found = _SUM.search(last_user)
        if found:
            right = int(found.group(1)) + int(found.group(2))
            answer = right if rng.random() < self.accuracy else right + rng.choice((-10, -2, -1, 1, 2, 10))
            parts = [f"The answer is {answer}."]
        else:
            parts = [rng.choice([o for o in _OPENERS if "thank you" not in o])]  # not a greeting
        words = count_words(parts[0])
        for sentence in rng.sample(_MIDDLES + _CLOSERS, len(_MIDDLES) + len(_CLOSERS)):
            if words + count_words(sentence) > target:
                break
            parts.append(sentence)
            words += count_words(sentence)
        return Reply.of(" ".join(parts))

    def timing(self, z: float, sigma: float, tokens: int) -> tuple[float, float]:
        """(seconds to first token, seconds to the end): a lognormal first token, then a steady speed."""
        ttft = self.ttft * math.exp(sigma * z - sigma * sigma / 2)
        return ttft, ttft + tokens / self.tokens_per_second


LINEUP: dict[str, SimModel] = {
    m.name: m
    for m in (
        SimModel("sim-mini", ttft=0.08, tokens_per_second=400.0, words=(6, 16), accuracy=0.60, price=(0.10, 0.40, 0.01)),
        SimModel("sim-standard", ttft=0.15, tokens_per_second=160.0, words=(15, 35), accuracy=0.85, price=(0.40, 1.60, 0.04)),
        SimModel("sim-pro", ttft=0.30, tokens_per_second=80.0, words=(30, 60), accuracy=0.98, price=(2.50, 10.00, 0.25)),
    )
}


JUDGE_PRICE = (0.15, 0.60, 0.015)  # sim-judge (nbtools/sim/judge.py): priced like a small real judge model


def list_price(model: str) -> tuple[float, float, float] | None:
    """The made-up list price of a named simulated model, or None for any other name."""
    found = LINEUP.get(model)
    return found.price if found is not None else JUDGE_PRICE if model == "sim-judge" else None
