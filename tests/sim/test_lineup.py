"""The simulator's lineup of named models (nbtools/sim/lineup.py): they differ in speed, accuracy, length and price,
so comparing models means something with no key; the same question always gets the same answer from one model."""

from __future__ import annotations

import re
from typing import Any

import nbtools
from nbtools._engine.rows import OK
from nbtools.sim.lineup import LINEUP
from tests.support.several_servers import on_sim

SUMS = [f"What is {a} + {b}?" for a, b in zip(range(11, 51), range(60, 100), strict=True)]


def _right(row: Any) -> bool:
    a, b = map(int, re.findall(r"-?\d+", row.prompt_text)[:2])
    return f"The answer is {a + b}." in (row.text or "")


def test_the_lineup_differs_in_speed_accuracy_length_and_price(sim) -> None:
    result = nbtools.batch(SUMS, models=[on_sim(sim, name) for name in LINEUP], concurrency=40)

    assert [row.status for row in result] == [OK] * len(SUMS) * 3
    parts = result.by_model
    accuracy = {label: sum(map(_right, part)) / len(part) for label, part in parts.items()}
    assert accuracy["sim-mini"] < accuracy["sim-standard"] < accuracy["sim-pro"]
    p50 = {label: part.summary().p50 for label, part in parts.items()}
    assert p50["sim-mini"] < p50["sim-standard"] < p50["sim-pro"]  # type: ignore[operator]
    words = {label: sum(len((row.text or "").split()) for row in part) for label, part in parts.items()}
    assert words["sim-mini"] < words["sim-standard"] < words["sim-pro"]
    cost = {label: part.summary().cost for label, part in parts.items()}
    assert 0 < cost["sim-mini"] < cost["sim-standard"] < cost["sim-pro"]  # type: ignore[operator]
    assert "made-up list price of the simulated sim-pro" in (parts["sim-pro"].price_note or "")
    # The same question always gets the same answer from the same model.
    again = nbtools.batch(SUMS[:5], models=[on_sim(sim, "sim-mini")])
    assert again.texts == parts["sim-mini"].texts[:5]
