"""sim-judge (nbtools/sim/judge.py): the simulator's judge answers nbtools' rubric and pairwise prompts in the
verdict's format, right when the reference (or the sum) says, with a knob for its position bias."""

from __future__ import annotations

import json

import nbtools
from nbtools._base.judging import Scale, pairwise_prompt, rubric_prompt
from nbtools.sim.judge import verdict

RUBRIC = "Is it right? {prompt} {reply} {expected}"


def test_rubric_verdicts_follow_the_reference_or_the_sum_on_the_scale_asked() -> None:
    ask = rubric_prompt(RUBRIC, Scale(1, 10), "What is 2 + 3?", "It is 5.", None)
    assert json.loads(verdict(ask))["score"] == 10
    ask = rubric_prompt(RUBRIC, Scale(1, 10), "What is 2 + 3?", "It is 6.", None)
    assert json.loads(verdict(ask))["score"] == 1
    ask = rubric_prompt(RUBRIC, Scale(0, 1, passfail=True), "Capital of France?", "Paris, of course.", "Paris")
    assert json.loads(verdict(ask)) == {"pass": True, "reason": "The answer is right."}


def test_pairwise_picks_the_right_reply_unless_its_position_bias_decides() -> None:
    asks = [pairwise_prompt(f"What is {a} + 1?", f"It is {a + 2}.", f"It is {a + 1}.", None) for a in range(200)]
    assert {json.loads(verdict(ask))["winner"] for ask in asks} == {"B"}
    biased = [json.loads(verdict(ask, bias=0.3))["winner"] for ask in asks]
    assert 0.2 < biased.count("A") / len(asks) < 0.4


def test_sim_judge_over_http_with_the_bias_knob(make_sim) -> None:
    sim = make_sim(latency=0.01, latency_spread=0, judge_bias=1.0)
    result = nbtools.batch([f"What is {a} + 2?" for a in range(4)], base_url=sim.base_url,
                           models=[{"base_url": sim.base_url, "model": "sim-mini"},
                                   {"base_url": sim.base_url, "model": "sim-pro"}])
    verdicts = result.pairwise(judge={"base_url": sim.base_url, "model": "sim-judge"})
    assert verdicts.position_bias == 1.0 and verdicts.pairs[0]["ties"] == 4
    judged = result.judge({"base_url": sim.base_url, "model": "sim-judge"}, judge_scale="pass/fail")
    assert all(row.judge is not None for row in judged)
