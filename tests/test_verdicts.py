"""The judge (``judge=``), pairwise verdicts with the order swapped, the judge against people's labels, and the
trade-off, against an independent server whose models answer sums right or wrong in a known pattern and whose judges
decide in a known way (tests/support/sums_server.py): every figure is checked against what that server decided."""

from __future__ import annotations

import json
import math

import pytest

import nbtools
from tests.support.helpers import serve_app
from tests.support.sums_server import SumsServer, sum_models

PROMPTS = [f"What is {a} + {a + 3}?" for a in range(8)]  # the first number is odd in half of them
SUMS = [a + a + 3 for a in range(8)]


def _judge(url: str, model: str = "judge-right", **more: object) -> dict[str, object]:
    return {"base_url": url, "model": model, "price": (1.0, 2.0), **more}


def test_the_judge_runs_as_a_batch_of_its_own_and_its_verdicts_land_on_the_rows(sums, tmp_path) -> None:
    server, url = sums
    result = nbtools.batch(PROMPTS, models=sum_models(url), expected=SUMS, judge=_judge(url, concurrency=3),
                           rubric="Is the sum right? {prompt} {reply} {expected}", price=(0.5, 0.5))

    assert server.calls == {"right": 8, "odd-wrong": 8, "judge-right": 16}
    judged = [body for body in server.bodies if body["model"] == "judge-right"]
    assert all(body["response_format"]["type"] == "json_schema" for body in judged)  # structured output
    assert "<reference>\n3\n</reference>" in judged[0]["messages"][-1]["content"]
    frame = result.to_pandas()
    assert str(frame["judge.score"].dtype) == "Float64" and str(frame["judge.reason"].dtype) == "string"
    wrong = frame[frame["label"] == "odd-wrong"]
    assert list(wrong["judge.score"]) == [1.0 if a % 2 else 5.0 for a in range(8)]
    assert (result[0].judge.score, result[0].judge.reason, result[0].judge.passed) == (5.0, "right", None)
    figures = {label: part.judge for label, part in result._by_model_figures().items()}
    assert figures["right"].mean == 5.0 and figures["odd-wrong"].mean == 3.0
    # The judge's cost is its own: 16 requests at its price, never in the models' figures.
    summary = result.summary()
    assert summary.cost == pytest.approx(16 * (20 * 0.5 + 10 * 0.5) / 1e6)
    assert summary.judge.cost == pytest.approx(16 * (20 * 1.0 + 10 * 2.0) / 1e6)
    assert summary.judge.tokens == 16 * 30 and result.judged.summary().total == 16
    text = result._view().text()
    assert "judge judge-right (scale 1-5): 16/16 verdicts, mean 4.00 of 16" in text
    lines = tmp_path / "rows.jsonl"
    result.to_jsonl(lines)
    first = json.loads(lines.read_text().splitlines()[0])
    assert (first["expected"], first["judge"]) == (3, {"score": 5.0, "passed": None, "reason": "right"})
    assert "odd-wrong: 8/8 done" in text and "judge mean 3.00 of 8" in text


def test_an_unparseable_judge_reply_is_an_invalid_output_retried_by_retry_invalid() -> None:
    server = SumsServer(garbled=3)  # the judge's first three replies are not JSON
    with serve_app(server.app()) as root:
        url = root + "/v1"
        result = nbtools.batch(PROMPTS[:4], base_url=url, model="odd-wrong", judge=_judge(url, "judge-garbled"),
                               judge_scale="1-5", retries=0)
        judged = result.judged
        assert judged is not None and len(judged.invalid) == 3 and result.summary().judge.invalid == 3
        assert sum(row.judge is None for row in result) == 3
        assert "3 invalid: result.retry_invalid() asks those again" in str(result.summary())
        result.retry_invalid()
    assert server.calls["judge-garbled"] == 7
    assert [row.judge.score for row in result] == [5.0, 1.0, 5.0, 1.0]
    assert result.summary().judge.invalid == 0


def test_the_judges_requests_count_toward_max_cost(sums) -> None:
    server, url = sums
    # The batch spends 8 x $0.00003 = $0.00024 of $0.0004; the judge's worst case is $0.0006 a request:
    # none fits in what is left, so the judge sends nothing and its rows are not sent.
    result = nbtools.batch(PROMPTS, base_url=url, model="right", price=(1.0, 1.0), max_tokens=10,
                           max_cost=0.0004, judge=_judge(url, price=(1.0, 2.0)))
    assert server.calls == {"right": 8}
    assert result.summary().judge.verdicts == 0
    assert all(row.status == "not sent" for row in result.judged)
    assert "max_cost" in str(result.judged.summary()) and result.judged.summary().capped
    # With room: the judge gets what the batch left of the cap, and the two together stay under it.
    server.calls.clear()
    result = nbtools.batch(PROMPTS, base_url=url, model="right", price=(1.0, 1.0), max_tokens=10, cache=False,
                           max_cost=0.003, judge=_judge(url, price=(1.0, 2.0)))
    assert server.calls == {"right": 8, "judge-right": 8}
    assert result.judged.options.max_cost == pytest.approx(0.003 - result.summary().cost)
    assert result.summary().cost + result.summary().judge.cost <= 0.003


def test_a_dry_run_sends_nothing_to_either_model_and_prices_the_judge(sums) -> None:
    server, url = sums
    estimate = nbtools.batch(PROMPTS, models=sum_models(url), judge=_judge(url), dry_run=True, max_tokens=20,
                             price=(1.0, 1.0))
    assert server.calls == {}
    assert estimate.judge.requests == 16 and estimate.judge.cost_high > estimate.judge.cost_low > 0
    assert "judge: judge-right: 16 requests" in estimate._view().text()


@pytest.mark.parametrize(("options", "needle"), [
    ({"judge": "nowhere:gpt"}, "judge='nowhere:gpt': unknown provider 'nowhere'"),
    ({"judge": "sim:sim-judge", "rubric": "Rate {answer}"}, "unknown placeholder {answer}"),
    ({"judge": "sim:sim-judge", "rubric": "Rate {prompt}"}, "must show the judge the reply with {reply}"),
    ({"judge": "sim:sim-judge", "judge_scale": "5-1"}, "must be a range of whole numbers low-high, or 'pass/fail'"),
    ({"judge": 7}, "must be a 'provider:model' string or a dict"),
])
def test_bad_judge_options_are_one_line_errors_before_any_request(sums, options, needle) -> None:
    server, url = sums
    with pytest.raises(nbtools.ConfigError) as info:
        nbtools.batch(PROMPTS, base_url=url, model="right", **options)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert server.calls == {}


def test_pairwise_with_a_judge_that_always_picks_the_first_reply_is_all_ties(sums) -> None:
    server, url = sums
    result = nbtools.batch(PROMPTS, models=sum_models(url))
    verdicts = result.pairwise(judge=_judge(url, "judge-first"))
    assert server.calls["judge-first"] == 8 * 2  # each prompt, the one pair, asked twice
    assert verdicts.pairs == [{"model_a": "right", "model_b": "odd-wrong", "a_wins": 0, "ties": 8, "b_wins": 0,
                               "no_verdict": 0}]
    assert verdicts.position_bias == 1.0 and verdicts.win_rates() == {"right": 0.5, "odd-wrong": 0.5}
    swapped = [body["messages"][-1]["content"] for body in server.bodies if body["model"] == "judge-first"]
    assert "<reply A>\nThe answer is 3." in swapped[0] and "<reply B>\nThe answer is 3." in swapped[1]
    assert "position bias 100%" in verdicts._view().text()


def test_pairwise_with_a_judge_that_picks_the_right_reply_names_the_winner(sums) -> None:
    server, url = sums
    result = nbtools.batch(PROMPTS, models=[*sum_models(url), {"base_url": url, "model": "right", "label": "again"}])
    verdicts = result.pairwise(judge=_judge(url))
    frame = verdicts.to_pandas().set_index(["model_a", "model_b"])
    # Where both are right the judge's pick follows the position: a tie. Where one is wrong, the right one wins.
    assert frame.loc[("right", "odd-wrong")].tolist() == [4, 4, 0, 0]
    assert frame.loc[("odd-wrong", "again")].tolist() == [0, 4, 4, 0]
    assert frame.loc[("right", "again")].tolist() == [0, 8, 0, 0]
    rates = verdicts.win_rates()
    assert rates["right"] == rates["again"] == pytest.approx((4 + 4 * 0.5 + 8 * 0.5) / 16)
    assert rates["odd-wrong"] == pytest.approx(8 * 0.5 / 16)
    assert verdicts.position_bias == pytest.approx(16 / 24)


def test_judge_agreement_gives_sklearns_kappa_and_the_disagreements(sums) -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    _, url = sums
    result = nbtools.batch(PROMPTS, base_url=url, model="odd-wrong", judge=_judge(url), judge_scale="pass/fail")
    verdicts = [row.judge.passed for row in result]
    assert verdicts == [a % 2 == 0 for a in range(8)]
    labels = [True, True, True, False, True, False, None, True]  # a person who disagrees on rows 1, 7 and skipped 6
    agreed = result.judge_agreement(labels)
    kept = [i for i, label in enumerate(labels) if label is not None]
    expected = sklearn.cohen_kappa_score([labels[i] for i in kept], [verdicts[i] for i in kept])
    assert agreed.kappa == pytest.approx(expected) and agreed.compared == 7 and agreed.left_out == 1
    assert agreed.confusion.loc[True, False] == 2 and agreed.confusion.loc[False, False] == 2
    assert list(agreed.disagreements["index"]) == [1, 7]
    assert "Cohen's kappa" in agreed._view().text()
    same = result.judge_agreement(["pass" if v else "fail" for v in verdicts])
    assert same.kappa == 1.0
    always = result.judge_agreement([True] * 8)  # a person who passes everything: no better than chance
    assert always.kappa == pytest.approx(sklearn.cohen_kappa_score([True] * 8, verdicts)) == 0.0
    assert math.isnan(result.judge_agreement([True, None, True, None, True, None, True, None]).kappa)


def test_tradeoff_gives_quality_latency_and_cost_per_model(sums) -> None:
    _, url = sums
    result = nbtools.batch(PROMPTS, models=sum_models(url), expected=SUMS, checks={"right": "number"}, price=(1.0, 1.0),
                           judge=_judge(url))
    by_check = result.tradeoff("right").to_pandas()
    assert by_check.loc["right", "quality"] == 1.0 and by_check.loc["odd-wrong", "quality"] == 0.5
    assert by_check.loc["right", "cost_per_1k"] == pytest.approx(30 / 1e6 * 1000)
    assert str(by_check["errors"].dtype) == "Int64" and by_check["p50"].notna().all()
    by_judge = result.tradeoff().to_pandas()
    assert by_judge.loc["odd-wrong", "quality"] == 3.0
    html = result.tradeoff()._repr_mimebundle_()["text/html"]
    assert "<svg" in html and "odd-wrong" in html
    with pytest.raises(nbtools.ConfigError, match="choose one of 'right', 'judge'"):
        result.tradeoff("speed")


def test_the_magic_runs_the_judge_after_the_batch(ip, sums) -> None:
    server, url = sums
    ip.run_cell_magic("llm_batch", f"--base-url {url} -m odd-wrong --judge judge-right --judge-scale pass/fail "
                      "--rubric 'Right? {prompt} {reply}' --no-display -o r", "\n".join(PROMPTS[:4]))
    result = ip.user_ns["r"]
    assert server.calls == {"odd-wrong": 4, "judge-right": 4}
    assert [row.judge.passed for row in result] == [True, False, True, False]
    assert "Right? <question>" in server.bodies[-1]["messages"][-1]["content"]
